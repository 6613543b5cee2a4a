"""Pure planning for restore tests and restores: scratch layout, live-path safety, commands, checks.

A restore test works only in ``<scratch base>/restore-test-<utc>-<rand>/`` on the host:
``restore/`` (restic restores absolute paths below it), ``redis/`` (the throwaway redis-server's own
dir: a copy of the restored dump, its pid, log) and nothing else. The scratch dir may
neither be nor contain nor sit inside any live data path: that is asserted before anything runs,
and the removal command refuses anything that is not such a dir.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from ..errors import SafetyError
from ..seam import quote

SCRATCH_NAME = re.compile(r"^restore-test-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
STAGING_NAME = re.compile(r"^run-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
MANIFEST_NAME = "ragops-manifest.json"
FREE_PORT_SCRIPT = "import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])"


def make_free_port_command(python: str = "python3") -> str:
    return f"{python} -c '{FREE_PORT_SCRIPT}'"


@dataclass(frozen=True)
class Layout:
    root: str  # the scratch dir of this run

    @property
    def restore_dir(self) -> str:
        return f"{self.root}/restore"

    @property
    def redis_dir(self) -> str:
        return f"{self.root}/redis"

    @property
    def chroma_go(self) -> str:
        """The order file the pre-started Chroma verify process waits for (see ``prewarm``)."""
        return f"{self.root}/chroma-go.json"

    def restored(self, path: str) -> str:
        """Where restic put an absolute snapshot path below the restore dir."""
        if not isinstance(path, str) or not path.startswith("/") or os.path.normpath(path) != path \
                or ".." in path.split("/") or "\0" in path:
            raise SafetyError(f"snapshot path {str(path)[:120]!r} is not a normalized absolute path: refused")
        return self.restore_dir + path


def make_scratch_base(staging_dir: str, override: str | None = None) -> str:
    """``--scratch-dir`` or ``<backup.staging_dir>-restore-test`` (same filesystem as staging)."""
    base = os.path.normpath(override or staging_dir.rstrip("/") + "-restore-test")
    if not os.path.isabs(base) or base == "/" or ".." in (override or staging_dir).split("/"):
        raise SafetyError(f"scratch dir {base!r}: must be an absolute directory, not '/', without '..'")
    return base


def make_layout(base: str, now: float | None = None, rand: str | None = None) -> Layout:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return Layout(f"{os.path.normpath(base)}/restore-test-{stamp}-{rand or secrets.token_hex(3)}")


def is_inside(path: str, parent: str) -> bool:
    path, parent = os.path.normpath(path), os.path.normpath(parent)
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def collect_live_paths(settings_list: list[Any], policy: Any = None, manifest: dict[str, Any] | None = None) -> list[str]:
    """Every live data path known from host settings, the policy and the manifest (deduplicated)."""
    paths: list[str | None] = []
    for settings in settings_list:
        paths += [settings.chroma.data_dir, settings.metrics_dir, settings.lock_path]
        paths += [r.root for r in settings.logs]
    if policy is not None:
        src = policy.sources
        paths += [src.chroma.data_dir, src.redis.data_dir, *[p.path for p in src.paths]]
        if policy.repository.url.startswith("/"):
            paths.append(policy.repository.url)
    for rec in (manifest or {}).get("sources", []):
        paths.append(rec.get("data_dir"))
        paths += [e.get("path") for e in rec.get("entries", []) if isinstance(e, dict)]
    out: list[str] = []
    for p in paths:
        if p and os.path.isabs(p) and os.path.normpath(p) not in out:
            out.append(os.path.normpath(p))
    return out


def check_scratch_safe(scratch: str, live_paths: list[str]) -> None:
    """Refuse a scratch dir equal to, inside, or containing a live path (it is removed afterwards)."""
    if not SCRATCH_NAME.match(os.path.basename(scratch)) or not os.path.isabs(scratch):
        raise SafetyError(f"refusing scratch dir {scratch!r}: not a ragops restore-test dir")
    for live in live_paths:
        if is_inside(scratch, live) or is_inside(live, scratch):
            raise SafetyError(f"refusing scratch dir {scratch}: it overlaps the live data path {live} "
                              "(use --scratch-dir elsewhere); a restore test never writes live data")


def make_create_command(layout: Layout) -> str:
    parent = os.path.dirname(layout.root)
    return (f"mkdir -p -m 0700 {quote(parent)} && [ ! -L {quote(parent)} ] && mkdir -m 0700 {quote(layout.root)} "
            f"{quote(layout.restore_dir)} {quote(layout.redis_dir)}")


def make_remove_command(layout: Layout) -> str:
    if not SCRATCH_NAME.match(os.path.basename(layout.root)):
        raise SafetyError(f"refusing to remove {layout.root!r}: not a ragops restore-test dir")
    return f"[ ! -L {quote(layout.root)} ] && rm -rf --one-file-system -- {quote(layout.root)}"


def find_staging_path(paths: list[str]) -> str | None:
    """The staging run dir among a snapshot's paths (it holds the manifest)."""
    return next((p for p in paths if STAGING_NAME.match(os.path.basename(p.rstrip("/")))), None)


def make_redis_start_command(server: str, directory: str, port: int, *, aof_dir: str | None = None) -> str:
    """A throwaway redis-server on 127.0.0.1:PORT, its own dir, saving nothing, daemonized with a pidfile."""
    args = [server, "--port", str(int(port)), "--bind", "127.0.0.1", "--protected-mode", "yes", "--dir", directory,
            "--dbfilename", "dump.rdb", "--daemonize", "yes", "--pidfile", f"{directory}/redis.pid",
            "--logfile", f"{directory}/redis.log"]
    args += ["--appendonly", "yes", "--appenddirname", aof_dir] if aof_dir else ["--appendonly", "no"]
    return " ".join(quote(a) for a in args) + " --save ''"


def make_redis_stop_command(directory: str) -> str:
    pid = quote(f"{directory}/redis.pid")
    # SIGKILL on purpose: the throwaway server saves nothing. It is gone once it is a zombie: the
    # daemonized server's parent is init, which may reap it only later (kill -0 would still succeed).
    return (f"[ -f {pid} ] || exit 0; p=$(cat {pid}); kill -9 \"$p\" 2>/dev/null || exit 0; "
            "for i in $(seq 250); do case \"$(ps -o stat= -p \"$p\" 2>/dev/null)\" in ''|Z*) exit 0;; esac; "
            "sleep 0.02; done; exit 0")


def make_check_plan(manifest: dict[str, Any], *, read_data_subset: str | None, selfcheck: int, compat: bool) -> list[str]:
    """The checks a restore test will run for this manifest, in order (shown by --json and docs)."""
    kinds = {r.get("kind") for r in manifest.get("sources", [])}
    plan = ["snapshot", "restore", "manifest", "files: sha256"]
    if "redis" in kinds:
        plan += ["redis: dump loads", "redis: redis-check-rdb", "redis: key counts", "redis: sample digest"]
    if "chroma" in kinds:
        plan += ["chroma: sqlite integrity, collections, counts, ids digests, dimension, metric, probes", "chroma: embedding model"]
        plan += ["chroma: self-retrieval"] if selfcheck else []
        plan += ["compatibility with live collections"] if compat else []
    plan.append(f"repository: restic check{' --read-data-subset=' + read_data_subset if read_data_subset else ''}")
    return plan
