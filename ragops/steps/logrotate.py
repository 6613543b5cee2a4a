"""logrotate: install or refresh a logrotate policy for the log roots (the guide's 10 MB x 3).

Idempotent: the wanted text is compared with what the host has; nothing is written when they
match, and ``--dry`` shows the unified diff. The policy is checked with ``logrotate -d`` first
when logrotate is installed.
"""

from __future__ import annotations

import difflib

from .. import output
from ..config import HostSettings
from ..report import FAILED, OK, SKIPPED, StepResult
from ..seam import Target

HEADER = "# Managed by ragops (invoke logrotate): edits here are overwritten.\n"


def quote_glob(path: str) -> str:
    """logrotate splits file names on whitespace unless double-quoted (it still globs inside quotes)."""
    return f'"{path}"' if any(ch.isspace() for ch in path) else path


def make_logrotate_text(settings: HostSettings) -> str:
    lr = settings.logrotate
    blocks = []
    for root in settings.logs:
        globs = " ".join(quote_glob(f"{root.root.rstrip('/')}/{p}") for p in root.patterns)
        options = [f"size {lr.size}", f"rotate {lr.rotate}", "missingok", "notifempty", "copytruncate"]
        if lr.compress:
            options += ["compress", "delaycompress"]
        blocks.append(globs + " {\n" + "".join(f"    {o}\n" for o in options) + "}\n")
    return HEADER + "\n".join(blocks)


def make_diff(current: str | None, wanted: str, path: str) -> str:
    return "".join(difflib.unified_diff((current or "").splitlines(keepends=True), wanted.splitlines(keepends=True),
                                        fromfile=f"{path} (on host)" if current is not None else "/dev/null",
                                        tofile=f"{path} (wanted)"))


def run_logrotate(target: Target) -> StepResult:
    settings = target.settings
    lr = settings.logrotate
    if not lr.enabled:
        return StepResult("logrotate", SKIPPED, message="nothing to do: logrotate disabled in config")
    if not settings.logs:
        return StepResult("logrotate", SKIPPED, message="nothing to do: no log roots configured")
    wanted = make_logrotate_text(settings)
    current = target.read_text(lr.path)
    if current == wanted:
        return StepResult("logrotate", OK, message=f"{lr.path} is up to date", details={"path": lr.path, "changed": False})
    diff = make_diff(current, wanted, lr.path)
    for line in diff.splitlines():
        output.info(target.name, line)
    check = target.run("command -v logrotate >/dev/null || exit 127; f=$(mktemp) && cat > \"$f\" && "
                       "logrotate -d -s /dev/null \"$f\" >/dev/null 2>\"$f.err\"; rc=$?; cat \"$f.err\" >&2; rm -f \"$f\" \"$f.err\"; exit $rc",
                       stdin=wanted)
    if check.exited not in (0, 127):
        return StepResult("logrotate", FAILED, message=f"logrotate rejects the policy: {check.stderr.strip()[-300:]}")
    target.put_text(wanted, lr.path, mode="0644")
    verb = "would write" if target.dry else ("created" if current is None else "updated")
    return StepResult("logrotate", OK, message=f"{verb} {lr.path} ({len(settings.logs)} root(s), size {lr.size} x {lr.rotate})",
                      details={"path": lr.path, "changed": True, "diff": diff, "validated": check.exited == 0})

