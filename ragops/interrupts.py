"""SIGTERM, SIGINT and SIGHUP during a run: stop what runs, let the cleanup run, report "interrupted".

:func:`handling` (``tasks.common.execute`` wraps the fleet run in it, main thread) installs handlers
for the three signals and restores the previous ones afterwards. The first signal *cancels* the
run: :func:`cancelled` turns true, and every command that was running through the seam at that
moment is stopped (its process group: SIGINT, SIGTERM, SIGKILL after ``GRACE_S``), so its
``Target.run`` returns and raises :class:`~ragops.errors.Interrupted`. Commands started after the
signal run normally: they are the cleanup in ``finally`` blocks (resume the writer, remove the
staging dir, stop throwaway servers, release the lock, write the failed-run metrics). The handler
never raises in the main thread; a second signal is only logged, so it cannot cut the cleanup
short. The runner starts no new step and no new host once cancelled.

A signal that was ignored when the run started (``nohup`` ignores SIGHUP) stays ignored.

The registry here only holds *killers*; the seam (``seam_runners``) creates and attaches them,
since processes and SSH channels live there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from . import output
from .errors import Interrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE_S = 5.0  # SIGINT, then SIGTERM (seam_runners), SIGKILL after this


class Killer(Protocol):
    """Stops one running command's processes (a local process group, or a remote one over SSH)."""

    def terminate(self) -> None:
        """Start stopping (SIGTERM); must not block for long."""

    def wait_gone(self, timeout: float) -> None:
        """Wait until every process of the command is gone; SIGKILL what is left after ``timeout``."""


class Running:
    """One command running through the seam. ``doomed``: it was running when the run was cancelled."""

    def __init__(self, started_before_cancel: bool) -> None:
        self.started_before_cancel = started_before_cancel
        self.doomed = False
        self.killer: Killer | None = None
        self._killed = False
        self._lock = threading.Lock()

    def attach(self, killer: Killer) -> None:
        """Called by the seam as soon as the command's processes exist."""
        with self._lock:
            self.killer = killer
        if self.doomed:
            self.kill()

    def kill(self) -> None:
        with self._lock:
            if self._killed or self.killer is None:
                return
            self._killed = True
            killer = self.killer
        killer.terminate()

    def settle(self) -> None:
        """After a doomed command returned: make sure nothing of it is left running."""
        if self.killer is not None:
            self.kill()
            self.killer.wait_gone(GRACE_S)


_lock = threading.Lock()
_running: set[Running] = set()
_signum: int | None = None
_received: list[int] = []
_wake = threading.Event()
_stop = threading.Event()
_local = threading.local()  # .shield: depth of shielded() blocks in this thread


def cancelled() -> bool:
    """True once ragops received SIGTERM, SIGINT or SIGHUP during this run."""
    return _signum is not None


def signal_name() -> str | None:
    return signal.Signals(_signum).name if _signum is not None else None


def describe() -> str:
    return f"interrupted by {signal_name() or 'a signal'}"


def check(host: str) -> None:
    """Raise Interrupted if the run was cancelled: for long sequences of steps between commands."""
    if cancelled():
        raise Interrupted(f"{host}: {describe()}")


T = TypeVar("T")


def result(future: Future[T]) -> T:
    """``future.result()`` that lets this thread run signal handlers while it waits.

    An untimed wait blocks in sem_wait, which only a signal sent to this very thread interrupts; the
    kernel may hand SIGTERM to a worker thread, and Python runs handlers in the main thread only.
    """
    while True:
        try:
            return future.result(timeout=0.2)
        except FutureTimeout:
            continue


def begin() -> Running:
    """Register a command about to start (the seam calls this before spawning it)."""
    shield = getattr(_local, "shield", 0) > 0
    with _lock:
        entry = Running(started_before_cancel=_signum is None and not shield)
        _running.add(entry)
    return entry


@contextmanager
def shielded() -> Iterator[None]:
    """Commands this thread starts in the block are cleanup a signal must not stop (resume the
    writer, remove the staging dir, release the lock), even if the signal arrives while they run."""
    _local.shield = getattr(_local, "shield", 0) + 1
    try:
        yield
    finally:
        _local.shield -= 1


def end(entry: Running) -> None:
    with _lock:
        _running.discard(entry)


def reset() -> None:
    """Forget a previous cancellation (a new run in the same process, e.g. tests)."""
    global _signum
    with _lock:
        _signum = None
        _received.clear()


def cancel(signum: int) -> None:
    """Cancel the run as if ``signum`` had arrived: doom and stop every command that started before."""
    global _signum
    with _lock:
        if _signum is None:
            _signum = signum
        doomed = [e for e in _running if e.started_before_cancel and not e.doomed]
        for entry in doomed:
            entry.doomed = True
    for entry in doomed:
        entry.kill()


def _on_signal(signum: int, frame: Any) -> None:
    """The handler: async-signal-light. Sets the flag now; the helper thread stops the commands."""
    global _signum
    if _signum is None:
        _signum = signum  # seen at once by cancelled(); commands begun from now on are cleanup
    _received.append(signum)
    _wake.set()


def _serve() -> None:
    seen = 0
    while True:
        _wake.wait()
        _wake.clear()
        while seen < len(_received):
            signum = _received[seen]
            seen += 1
            name = signal.Signals(signum).name
            if seen == 1:
                output.warn("", f"{name} received: stopping; cleanup still runs (resume what was paused, remove scratch data)")
                cancel(signum)
            else:
                output.warn("", f"{name} received again: still cleaning up; ragops exits when the cleanup is done")
        if _stop.is_set():
            return


@contextmanager
def handling() -> Iterator[None]:
    """Install the SIGTERM/SIGINT/SIGHUP handlers for the block (main thread only), then restore them.
    The cancellation lasts until the block ends."""
    reset()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _stop.clear()
    server = threading.Thread(target=_serve, name="ragops-interrupts", daemon=True)
    server.start()
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, _on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop.set()
        _wake.set()
        server.join(timeout=5)
        reset()  # the run is over: the next one (same process) starts clean
