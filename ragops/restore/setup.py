"""Before a restore test restores anything: its tools exist, leftovers of dead runs are gone, and
the scratch dir's filesystem has room for the snapshot.

- :func:`run_tool_preflight`: ``redis-server`` (``backup.redis_server``) and ``redis-check-rdb``
  (the policy's ``sources.redis.check_rdb``) must be on the host when the policy backs up Redis; a
  missing tool is a setup error (exit 2) naming the tool and the setting, never "damage".
- :func:`run_remove_leftovers`: the host lock is held by the runner during a run, so every other
  ``restore-test-*`` dir in the scratch base is from a dead run: its throwaway redis-server is
  killed (only if that process' cwd or cmdline points into the dir) and the dir removed.
- :func:`run_need_bytes` + :func:`run_space_check`: ``restic stats --mode restore-size`` of the
  snapshot, then ``ragops.space.run_space_preflight`` on the scratch dir.
"""

from __future__ import annotations

from typing import Any

from .. import output
from ..backup import restic
from ..backup.repository import run_restic
from ..backup.sources import parse_json_line
from ..errors import ConfigError, StepError
from ..remote import script
from ..seam import Target, quote


def make_missing_tool_error(target: Target, tool: str, setting: str, role: str) -> ConfigError:
    return ConfigError(f"{target.name}: {tool!r} ({role}) is not installed or not executable on the host: install it "
                       f"or point the setting {setting} at it; nothing was restored")


def find_missing_tool(target: Target, tools: list[tuple[str, str, str]]) -> tuple[str, str, str] | None:
    """The first (tool, setting, role) whose binary the host's shell cannot find (``command -v``)."""
    for tool, setting, role in tools:
        if not target.run(f"command -v {quote(tool)} >/dev/null 2>&1").ok:
            return tool, setting, role
    return None


def make_redis_tools(target: Target, policy: Any) -> list[tuple[str, str, str]]:
    return [(target.settings.backup.redis_server, "backup.redis_server (ragops.yaml)", "loads the restored dump"),
            (policy.sources.redis.check_rdb, "sources.redis.check_rdb (backup policy)", "validates the restored dump")]


def run_tool_preflight(target: Target, source: Any, policy: Any) -> None:
    if not (policy.sources.redis.enabled and source.settings.redis.enabled):
        return
    missing = find_missing_tool(target, make_redis_tools(target, policy))
    if missing is not None:
        raise make_missing_tool_error(target, *missing)


def run_remove_leftovers(target: Target, base: str, keep: str) -> list[str]:
    """Remove the scratch dirs (and throwaway redis-servers) of dead restore tests in ``base``."""
    res = target.run(f"{target.python} - leftovers {quote(base)} {quote(keep)}", stdin=script("restore_guard"), write=True)
    if res.dry:
        return []
    doc = parse_json_line(res.stdout, "remove restore-test leftovers")
    removed: list[str] = doc.get("removed", [])
    if removed or doc.get("killed"):
        output.warn(target.name, f"removed {len(removed)} leftover scratch dir(s) of dead restore tests in {base}"
                    + (f" and killed their redis-server(s) {doc['killed']}" if doc.get("killed") else "")
                    + ": " + ", ".join(removed[:5]))
    if not doc.get("ok"):
        raise StepError(f"{target.name}: cannot remove leftovers of dead restore tests: "
                        + "; ".join(doc.get("problems") or [str(doc.get("error"))]))
    return removed


def run_need_bytes(target: Target, repo: restic.Repo, source: str, tags: list[str], wanted: str) -> int:
    """Bytes the restore writes: restic's restore-size of ``wanted`` (``latest``: of the host and tags)."""
    args = ["stats", "--mode", "restore-size"]
    args += ["--host", source, "--tag", ",".join(tags), "latest"] if wanted == "latest" else [wanted]
    doc = parse_json_line(run_restic(target, repo, args, what="stats").stdout, "restic stats")
    return int(doc.get("total_size") or 0)


def run_space_check(target: Target, scratch: str, need: int) -> None:
    from ..space import run_space_preflight

    run_space_preflight(target, scratch, need, what="restore-test scratch dir")
