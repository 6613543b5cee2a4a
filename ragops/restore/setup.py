"""Before a restore test restores anything: its tools exist, leftovers of dead runs are gone, and
the scratch dir's filesystem has room for the snapshot.

- :func:`run_tool_preflight`: each data source's ``preflight`` (e.g. Redis: ``redis-server``,
  ``backup.redis_server``, and ``redis-check-rdb``, the policy's ``sources.redis.check_rdb``, must
  be on the host); a missing tool is a setup error (exit 2) naming the tool and the setting, never "damage".
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
from ..backup.sources import parse_json_line, registry
from ..backup.sources.hooks import HostScripts
from ..errors import StepError
from ..seam import Target


def run_tool_preflight(target: Target, source: Any, policy: Any) -> None:
    """Every data source's ``preflight``: its tools exist on the verifying host (else ConfigError, exit 2)."""
    for key in registry.keys():
        registry.hook(key, "preflight")(target, source, registry.settings_of(key, policy))


def run_remove_leftovers(target: Target, base: str, keep: str) -> list[str]:
    """Remove the scratch dirs (and throwaway redis-servers) of dead restore tests in ``base``."""
    res = HostScripts(target).run_script("restore_guard", ["leftovers", base, keep], write=True)
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
