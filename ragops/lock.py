"""Per-host run lock: a lock file on the host, created under flock, refreshed by a heartbeat.

A second run on the same host refuses at once and names the holder (pid, origin, start time).
A lock is stale, and taken over (logged), when its heartbeat is older than ``lock_ttl_s`` or
when its holder ran on this controller and that pid is gone (e.g. ``kill -9``).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import output
from .errors import ConfigError, LockHeldError, StepError
from .seam import Target, pid_alive, quote


def make_lock_info(task: str) -> dict[str, object]:
    now = time.time()
    return {
        "pid": os.getpid(),
        "origin": socket.gethostname(),
        "started": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "task": task,
        "run_id": uuid.uuid4().hex,
    }


IS_DIRECTORY, NO_PARENT = 64, 65  # exit codes of the acquire command: lock_path is unusable


def make_acquire_command(path: str, info_line: str) -> str:
    """Create the lock if absent; else print HELD <age seconds> and the holder's line (exit 3).

    The lock's own directory is created when its parent exists (/run/lock on a fresh tmpfs), never
    a chain of missing parents (exit 65); a lock_path that is a directory exits 64."""
    lp, d = quote(path), os.path.dirname(path) or "/"
    return (
        f"if [ -d {lp} ]; then exit {IS_DIRECTORY}; fi; "
        f"if [ ! -d {quote(d)} ]; then [ -d {quote(os.path.dirname(d) or '/')} ] || exit {NO_PARENT}; "
        f"mkdir {quote(d)} 2>/dev/null || [ -d {quote(d)} ] || exit {NO_PARENT}; fi; "
        f"exec 9>{quote(path + '.guard')} && flock -w 10 9 || exit 75; "
        f"if [ -e {lp} ]; then echo HELD $(( $(date +%s) - $(stat -c %Y {lp}) )); cat {lp}; exit 3; fi; "
        f"printf '%s\\n' {quote(info_line)} > {lp} && echo ACQUIRED"
    )


def make_takeover_command(path: str, expected: str, info_line: str) -> str:
    """Replace the lock only if it still holds exactly what we judged stale."""
    lp = quote(path)
    return (
        f"exec 9>{quote(path + '.guard')} && flock -w 10 9 || exit 75; "
        f"if [ -e {lp} ] && [ \"$(cat {lp})\" != {quote(expected)} ]; then exit 3; fi; "
        f"printf '%s\\n' {quote(info_line)} > {lp} && echo TAKEN"
    )


def make_release_command(path: str, run_id: str) -> str:
    lp = quote(path)
    return (
        f"exec 9>{quote(path + '.guard')} && flock -w 10 9 || exit 75; "
        f"grep -q {quote(run_id)} {lp} 2>/dev/null && rm -f {lp}; true"
    )


def is_stale(holder: dict[str, object], age_s: float, ttl_s: float, here: str) -> str | None:
    """Why the holder's lock is stale, or None if it is live."""
    if age_s > ttl_s:
        return f"no heartbeat for {age_s:.0f}s (ttl {ttl_s:.0f}s)"
    pid = holder.get("pid")
    if holder.get("origin") == here and isinstance(pid, int) and not pid_alive(pid):
        return f"holder pid {pid} on {here} is gone"
    return None


def describe_holder(holder: dict[str, object]) -> str:
    return f"pid {holder.get('pid')} on {holder.get('origin')}, {holder.get('task', 'run')} started {holder.get('started')}"


@dataclass
class HostLock:
    target: Target
    task: str
    info: dict[str, object] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    held: bool = False

    @property
    def path(self) -> str:
        return self.target.settings.lock_path

    def acquire(self) -> None:
        if self.target.dry:
            output.dry_command(self.target.name, f"take lock {self.path}")
            return
        self.info = make_lock_info(self.task)
        line = json.dumps(self.info, sort_keys=True)
        res = self.target.run(make_acquire_command(self.path, line))
        if res.exited == 3:
            first, _, rest = res.stdout.partition("\n")
            raw = rest.strip()
            age = float(first.split()[1]) if len(first.split()) > 1 else 0.0
            try:
                holder = json.loads(raw)
            except ValueError:
                holder = None
            if isinstance(holder, dict):
                why = is_stale(holder, age, self.target.settings.lock_ttl_s, socket.gethostname())
            else:  # read under the guard flock, so no writer is mid-write: garbage, not a holder
                why = f"its content is not a ragops lock ({raw[:60]!r})"
                holder = {"origin": "?", "pid": "?", "started": "?", "raw": raw}
            if why is None:
                raise LockHeldError(f"{self.target.name}: lock {self.path} is held by {describe_holder(holder)}; refusing to run")
            res2 = self.target.run(make_takeover_command(self.path, raw, line))
            if res2.exited == 3:
                raise LockHeldError(f"{self.target.name}: lock {self.path} changed hands while taking it over; refusing to run")
            if not res2.ok:
                raise StepError(f"{self.target.name}: cannot take over lock {self.path}: {res2.stderr.strip()}")
            output.warn(self.target.name, f"took over stale lock {self.path} ({why}; was {describe_holder(holder)})")
        elif res.exited == IS_DIRECTORY:
            raise ConfigError(f"{self.target.name}: lock_path: {self.path} is a directory (set lock_path to a file)")
        elif res.exited == NO_PARENT:
            raise ConfigError(f"{self.target.name}: lock_path: {self.path}: its directory {os.path.dirname(self.path)} "
                              "does not exist (create it, or set lock_path under an existing directory)")
        elif not res.ok:
            raise StepError(f"{self.target.name}: cannot take lock {self.path} (exit {res.exited}): {res.stderr.strip()}")
        self.held = True
        self._thread = threading.Thread(target=self._heartbeat, name=f"lock-{self.target.name}", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        every = max(2.0, min(30.0, self.target.settings.lock_ttl_s / 4))
        while not self._stop.wait(every):
            try:
                self.target.run(f"touch -c {quote(self.path)}")
            except Exception:  # noqa: BLE001 - a missed beat is not fatal; the ttl is generous
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held:
            try:
                self.target.run(make_release_command(self.path, str(self.info["run_id"])))
            finally:
                self.held = False

    def __enter__(self) -> HostLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
