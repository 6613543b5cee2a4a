"""cleanup: delete old logs and temp files under configured roots, one remote command per root.

Safety, all enforced in the one shell command itself (so it holds over SSH too, with nothing but a
POSIX shell, coreutils and GNU find on the host):
- the root must be an absolute, existing directory; the shell enters it once (``cd -P``) and the
  kernel's name for the directory it is in (``getcwd`` through ``env pwd -P``; bash's builtin
  ``pwd -P`` re-resolves the path text) must equal the configured root: a symlinked root, one below a
  symlinked directory, or one swapped mid-run is refused. Everything after runs from that working
  directory (``find .``), so no path component swapped later can lead the walk elsewhere; GNU find
  walks with directory fds (``openat`` without following links, ``unlinkat``). A directory moved
  out of the root while find is inside it is still finished (its files were in the root when the
  walk entered it);
- mount points below the root (read from ``/proc/self/mountinfo`` of that shell: same-filesystem
  bind mounts have the same ``st_dev``, so ``-xdev`` alone does not stop them) are skipped unless
  ``cross_filesystems``. ``-delete`` implies ``-depth``, where ``-prune`` does nothing, so they are
  excluded with ``! -path`` tests on the mount point's own name, glob characters escaped: a mount
  point cannot be renamed (EBUSY), the directories above it can, mid-run, so the name is matched at
  any depth (a directory of the same name elsewhere in the root is skipped too). No readable
  mountinfo: the root is refused;
- ``find -P`` never follows symlinks, ``-type f`` never deletes a link, ``-xdev`` stays on the
  root's filesystem unless ``cross_filesystems``; patterns are names only (checked in config), matched
  as bytes (``LC_ALL=C``, so no locale can make an exclusion fail to match);
- ``--dry`` runs the same find without ``-delete``; a real run prints a file only once it is deleted;
- ``-ignore_readdir_race``: a file vanishing mid-run is not an error.
Names come back NUL-separated and exact in the JSON report; human output escapes control characters.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field

from .. import output
from ..config import CleanupRoot
from ..errors import SafetyError
from ..report import FAILED, OK, SKIPPED, StepResult, format_bytes
from ..seam import Target, quote

LIST_LIMIT = 1000  # paths kept per root in the JSON report (counts and bytes are always complete)
_MOUNTINFO_ESCAPES = {" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}  # the kernel's (seq_path)
_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}

# $F: a mount point's path relative to the root, as mountinfo spells it; $V: its last name as a glob.
_REPLACE = 'rep() { s=$1 o=; while :; do case $s in *"$2"*) o=$o${s%%"$2"*}$3; s=${s#*"$2"};; *) break;; esac; done; V=$o$s; }'
_TO_GLOB = " ".join(f"rep \"$V\" {quote(a)} {quote(b)};" for a, b in (
    ("*", "\\*"), ("?", "\\?"), ("[", "\\["),  # glob characters first: their backslashes precede *?[ only
    ("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\\\")))  # \134 last: never rescanned


def encode_mountinfo(path: str) -> str:
    return "".join(_MOUNTINFO_ESCAPES.get(ch, ch) for ch in path)


def decode_mountinfo(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def printable(text: str) -> str:
    """``text`` for a human output line: backslashes and control/format characters escaped, so a
    crafted file name cannot start a new line, move the cursor or fake a log line."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[ch])
        elif unicodedata.category(ch) in _UNPRINTABLE:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def normalize_root(root: str) -> str:
    path = "/" + os.path.normpath(root).lstrip("/")  # normpath keeps a leading '//'; getcwd never has one
    if not os.path.isabs(root) or path == "/" or ".." in root.split("/"):
        raise SafetyError(f"refusing cleanup root {root!r}: must be absolute, not '/', without '..'")
    return path


def make_find_command(root: CleanupRoot, *, delete: bool) -> str:
    """The shell command for one root: enter and check it, collect the mount points below it, then
    one ``find .`` printing status records and ``size<TAB>relative path``, each ended by NUL."""
    path = normalize_root(root.root)
    names: list[str] = []
    for i, pattern in enumerate(root.patterns):
        names += (["-o"] if i else []) + ["-name", quote(pattern)]
    find = ["exec", "find", "-P", ".", "-mindepth", "1", "-ignore_readdir_race"]
    lines = [
        f"R={quote(path)}",
        "[ -d \"$R\" ] || { printf 'MISSING\\0'; exit 0; }",
        "cd -P -- \"$R\" || { printf 'FAILED\\tcannot enter the directory\\0'; exit 0; }",
        "P=$(env pwd -P) && [ \"$P\" = \"$R\" ] || { printf 'RESOLVES\\t%s\\0' \"$P\"; exit 0; }",
        "set --",
    ]
    if not root.cross_filesystems:
        find.append("-xdev")
        lines += [
            "[ -r /proc/self/mountinfo ] || { printf 'NOMOUNTINFO\\0'; exit 0; }",
            f"E={quote(encode_mountinfo(path))}",
            _REPLACE,
            "while IFS=' ' read -r _ _ _ _ F _; do case $F in \"$E\"/*) F=${F#\"$E\"/}; printf 'MOUNT\\t%s\\0' \"$F\"; "
            f"V=${{F##*/}}; {_TO_GLOB} set -- \"$@\" ! -path \"*/$V\" ! -path \"*/$V/*\";; esac; done < /proc/self/mountinfo",
            # the mount points were read by path: the root must still be where the walk starts
            "P=$(env pwd -P) && [ \"$P\" = \"$R\" ] || { printf 'RESOLVES\\t%s\\0' \"$P\"; exit 0; }",
        ]
    find += ['"$@"', "-type", "f", "\\(", *names, "\\)", "-mtime", f"+{root.max_age_days}"]
    if delete:
        find.append("-delete")  # before -printf: a file is reported once it is gone (stat kept from -mtime)
    find += ["-printf", "'%s\\t%P\\0'"]
    lines += ["printf 'BEGIN\\0'", "export LC_ALL=C", " ".join(find)]
    return "\n".join(lines)


@dataclass
class RootReport:
    root: str
    kind: str
    status: str = OK
    files: int = 0
    bytes: int = 0
    paths: list[tuple[str, int]] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)  # mount points below the root, skipped
    message: str = ""


_REFUSALS = {
    "RESOLVES": "refused: resolves to {} (a symlink or below one, or moved mid-run), not the configured root",
    "FAILED": "refused: {}",
    "NOMOUNTINFO": "refused: /proc/self/mountinfo is not readable, so mount points below the root cannot be "
                   "skipped (set cross_filesystems: true to clean across them)",
}


def parse_find_output(stdout: str, report: RootReport, keep_all: bool) -> None:
    """Status records up to ``BEGIN``, then one ``size<TAB>path relative to the root`` per file."""
    records = stdout.split("\0")
    begin = -1
    for index, record in enumerate(records):
        kind, _, value = record.partition("\t")
        if kind == "MISSING":
            report.status, report.message = SKIPPED, "does not exist"
            return
        if kind in _REFUSALS:
            report.status, report.message = FAILED, _REFUSALS[kind].format(value or "an unknown path")
            return
        if kind == "MOUNT":
            report.mounts.append(f"{normalize_root(report.root)}/{decode_mountinfo(value)}")
        elif kind == "BEGIN":
            begin = index
            break
        else:  # not our command's output (a shell that printed something else first): refuse to trust it
            report.status, report.message = FAILED, f"unexpected output: {record[:200]!r}"
            return
    if begin < 0:
        report.status, report.message = FAILED, "the command stopped before the walk began"
        return
    base = normalize_root(report.root)
    for record in records[begin + 1:]:
        if not record:
            continue
        size, _, rel = record.partition("\t")
        report.files += 1
        report.bytes += int(size)
        if keep_all or len(report.paths) < LIST_LIMIT:
            report.paths.append((f"{base}/{rel}", int(size)))


def run_root(target: Target, root: CleanupRoot, kind: str) -> RootReport:
    report = RootReport(root=root.root, kind=kind)
    # The find itself is a read under --dry (it lists, without -delete): it always runs.
    res = target.run(make_find_command(root, delete=not target.dry))
    parse_find_output(res.stdout, report, keep_all=target.dry)
    if res.exited != 0 and report.status == OK:
        report.status = FAILED
        report.message = f"find exit {res.exited}: {res.stderr.strip()[-400:]}"
    return report


def report_root(target: Target, rep: RootReport, root: CleanupRoot) -> None:
    """The human lines for one root; every name from the host goes through ``printable``."""
    name, shown = target.name, printable(rep.root)
    if target.dry:
        for path, size in rep.paths:
            output.dry_command(name, f"delete {printable(path)} ({format_bytes(size)})")
    if rep.mounts:
        output.info(name, f"{shown}: skipped {len(rep.mounts)} mount point(s) below the root: "
                          + ", ".join(printable(m) for m in rep.mounts[:20]))
    if rep.status != OK:
        output.warn(name, f"{shown}: {rep.status}: {printable(rep.message)}")
    elif rep.files:
        verb = "would delete" if target.dry else "deleted"
        output.info(name, f"{shown}: {verb} {rep.files} file(s), {format_bytes(rep.bytes)}")
    else:
        output.info(name, f"{shown}: nothing older than {root.max_age_days} day(s) matching "
                          f"{printable(', '.join(root.patterns))}")


def run_cleanup(target: Target) -> StepResult:
    settings = target.settings
    roots = [(r, "logs") for r in settings.logs] + [(r, "temp") for r in settings.temp]
    if not roots:
        return StepResult("cleanup", SKIPPED, message="nothing to do: no log or temp roots configured")
    reports = [run_root(target, root, kind) for root, kind in roots]
    result = StepResult("cleanup")
    for rep, (root, _) in zip(reports, roots, strict=True):
        report_root(target, rep, root)
        result.files += rep.files
        if not target.dry:
            result.bytes_freed += rep.bytes
        result.metrics.append(("ragops_cleanup_files", {"root": rep.root, "kind": rep.kind}, float(rep.files)))
        result.metrics.append(("ragops_cleanup_bytes", {"root": rep.root, "kind": rep.kind}, float(rep.bytes)))
    result.details = {
        "roots": [
            {"root": r.root, "kind": r.kind, "status": r.status, "files": r.files, "bytes": r.bytes, "message": r.message,
             "mounts_skipped": r.mounts, "paths": [{"path": p, "bytes": s} for p, s in r.paths[:LIST_LIMIT]],
             "paths_truncated": r.files > LIST_LIMIT}
            for r in reports
        ]
    }
    failed = [r for r in reports if r.status == FAILED]
    total = sum(r.bytes for r in reports)
    verb = "would delete" if target.dry else "deleted"
    result.message = f"{verb} {result.files} file(s), {format_bytes(total)} in {len(reports)} root(s)"
    if failed:
        result.status = FAILED
        result.message += "; " + "; ".join(f"{printable(r.root)}: {printable(r.message)}" for r in failed)
    elif all(r.status == SKIPPED for r in reports):
        result.status = SKIPPED
        result.message = "nothing to do: no configured root exists"
    return result
