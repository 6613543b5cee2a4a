"""cleanup: delete old logs and temp files under configured roots, one remote command per root.

Safety, all enforced in the command itself (so it holds over SSH too):
- the root must be an absolute, existing directory that resolves to itself (``readlink -f``):
  a symlinked root, or one below a symlinked directory, is refused;
- ``find -P`` never follows symlinks, ``-type f`` never deletes a link, ``-xdev`` stays on the
  root's filesystem unless ``cross_filesystems``; patterns are names only (checked in config);
- ``-ignore_readdir_race``: a file vanishing mid-run is not an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import output
from ..config import CleanupRoot
from ..errors import SafetyError
from ..report import FAILED, OK, SKIPPED, StepResult, format_bytes
from ..seam import Target, quote

LIST_LIMIT = 1000  # paths kept per root in the JSON report (counts and bytes are always complete)


def make_find_command(root: CleanupRoot, *, delete: bool) -> str:
    """The shell command for one root: safety preamble, then one find that prints size<TAB>path\\0."""
    path = os.path.normpath(root.root)
    if not os.path.isabs(path) or not path.strip("/") or ".." in root.root.split("/"):
        raise SafetyError(f"refusing cleanup root {root.root!r}: must be absolute, not '/', without '..'")
    names: list[str] = []
    for i, pattern in enumerate(root.patterns):
        names += (["-o"] if i else []) + ["-name", quote(pattern)]
    find = ["find", "-P", quote(path), "-mindepth", "1", "-ignore_readdir_race"]
    if not root.cross_filesystems:
        find.append("-xdev")
    find += ["-type", "f", "\\(", *names, "\\)", "-mtime", f"+{root.max_age_days}", "-printf", "'%s\\t%p\\0'"]
    if delete:
        find.append("-delete")
    return (
        f"R={quote(path)}; [ -d \"$R\" ] || {{ echo MISSING; exit 0; }}; "
        f"[ \"$(readlink -f -- \"$R\")\" = \"$R\" ] || {{ echo \"RESOLVES $(readlink -f -- \"$R\")\"; exit 0; }}; "
        f"echo BEGIN; exec {' '.join(find)}"
    )


@dataclass
class RootReport:
    root: str
    kind: str
    status: str = OK
    files: int = 0
    bytes: int = 0
    paths: list[tuple[str, int]] = field(default_factory=list)
    message: str = ""


def parse_find_output(stdout: str, report: RootReport, keep_all: bool) -> None:
    head, _, body = stdout.partition("\n")
    if head == "MISSING":
        report.status, report.message = SKIPPED, "does not exist"
        return
    if head.startswith("RESOLVES"):
        report.status = FAILED
        report.message = f"refused: resolves to {head.split(' ', 1)[1]} (a symlink or below one), not the configured root"
        return
    for record in body.split("\0"):
        if not record:
            continue
        size, _, path = record.partition("\t")
        report.files += 1
        report.bytes += int(size)
        if keep_all or len(report.paths) < LIST_LIMIT:
            report.paths.append((path, int(size)))


def run_root(target: Target, root: CleanupRoot, kind: str) -> RootReport:
    report = RootReport(root=root.root, kind=kind)
    # The find itself is a read under --dry (it lists, without -delete): it always runs.
    res = target.run(make_find_command(root, delete=not target.dry))
    parse_find_output(res.stdout, report, keep_all=target.dry)
    if res.exited != 0 and report.status == OK:
        report.status = FAILED
        report.message = f"find exit {res.exited}: {res.stderr.strip()[-400:]}"
    return report


def run_cleanup(target: Target) -> StepResult:
    settings = target.settings
    roots = [(r, "logs") for r in settings.logs] + [(r, "temp") for r in settings.temp]
    if not roots:
        return StepResult("cleanup", SKIPPED, message="nothing to do: no log or temp roots configured")
    reports = [run_root(target, root, kind) for root, kind in roots]
    result = StepResult("cleanup")
    for rep, (root, _) in zip(reports, roots, strict=True):
        verb = "would delete" if target.dry else "deleted"
        if target.dry:
            for path, size in rep.paths:
                output.dry_command(target.name, f"delete {path} ({format_bytes(size)})")
        if rep.status == OK:
            text = f"{rep.root}: {verb} {rep.files} file(s), {format_bytes(rep.bytes)}"
            if not rep.files:
                text = f"{rep.root}: nothing older than {root.max_age_days} day(s) matching {', '.join(root.patterns)}"
            output.info(target.name, text)
        else:
            output.warn(target.name, f"{rep.root}: {rep.status}: {rep.message}")
        result.files += rep.files
        if not target.dry:
            result.bytes_freed += rep.bytes
        result.metrics.append(("ragops_cleanup_files", {"root": rep.root, "kind": rep.kind}, float(rep.files)))
        result.metrics.append(("ragops_cleanup_bytes", {"root": rep.root, "kind": rep.kind}, float(rep.bytes)))
    result.details = {
        "roots": [
            {"root": r.root, "kind": r.kind, "status": r.status, "files": r.files, "bytes": r.bytes, "message": r.message,
             "paths": [{"path": p, "bytes": s} for p, s in r.paths[:LIST_LIMIT]], "paths_truncated": r.files > LIST_LIMIT}
            for r in reports
        ]
    }
    failed = [r for r in reports if r.status == FAILED]
    total = sum(r.bytes for r in reports)
    verb = "would delete" if target.dry else "deleted"
    result.message = f"{verb} {result.files} file(s), {format_bytes(total)} in {len(reports)} root(s)"
    if failed:
        result.status = FAILED
        result.message += "; " + "; ".join(f"{r.root}: {r.message}" for r in failed)
    elif all(r.status == SKIPPED for r in reports):
        result.status = SKIPPED
        result.message = "nothing to do: no configured root exists"
    return result
