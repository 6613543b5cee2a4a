"""Reach a TCP service as the host sees it: directly on ``local``, through an SSH tunnel elsewhere.

``open_tunnel(target, host, port, what=...)`` is a context manager yielding the ``(address, port)``
the controller connects to. On the local host that is ``(host, port)`` itself. On a remote host it
is a free port on the controller's loopback, forwarded by Fabric's ``Connection.forward_local``
over the target's own SSH connection (the seam's, so its host key checks and error wording apply)
to ``host:port`` as resolved *on the host* (OpenSSH's ``-L``: a direct-tcpip channel per
connection). Nothing is started or installed on the host.

Around Fabric's forwarder:

- before anything listens, one direct-tcpip channel is opened and closed as a probe: a service
  that is down on the host (or ``AllowTcpForwarding no``) is one :class:`TunnelError` naming it,
  instead of a client hanging on a half-open socket while Fabric's thread holds the error;
- Fabric binds the listener in a thread: the port is handed out only once it accepts a probe
  connection and that thread is still alive (a port another process took in between makes the
  thread's bind fail: refused, not used);
- the tunnel closes when the block ends, also on errors: the listener, each forwarded connection
  and its thread (Fabric joins them). A channel the host refused inside Fabric's threads becomes a
  TunnelError; a socket reset seen there is only a symptom: the block's own error (e.g. a TLS
  failure) is raised instead, and after a block that succeeded it is ignored.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import StepError
from .seam import Target

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 5.0


class _NoChannelFailureLines(logging.Filter):
    """paramiko logs a refused channel as an ERROR line on stderr; the TunnelError says it instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "open FAILED" not in record.getMessage()


logging.getLogger("paramiko.transport").addFilter(_NoChannelFailureLines())


class TunnelError(StepError):
    """The host cannot reach the service (or the SSH server refuses to forward to it); ``reason``
    is the message without the host's name (for a check's own line)."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def _fail(target: Target, reason: str) -> TunnelError:
    return TunnelError(f"{target.name}: {reason}", reason=reason)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_listening(port: int) -> bool:
    """True while something on the controller accepts connections on ``LOOPBACK:port`` (a connect,
    not a bind: a probing bind could make the forwarder's own bind fail)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((LOOPBACK, port)) == 0


def describe_channel_error(exc: BaseException) -> str:
    """paramiko's ChannelException(code, text) in words: 1 = forwarding prohibited, 2 = connect failed."""
    code = getattr(exc, "code", None)
    if code == 1:
        return "the SSH server refuses port forwarding (AllowTcpForwarding no?)"
    if code == 2:
        return "connection refused or unreachable on the host (is the service up, and is this the address the host sees?)"
    return f"{type(exc).__name__}: {exc}"


def _manager(address: tuple[str, int], known: set[threading.Thread]) -> Any:
    from fabric.tunnels import TunnelManager

    for thread in threading.enumerate():
        if thread not in known and isinstance(thread, TunnelManager) and thread.local_address == address:
            return thread
    return None


def _wait_listening(address: tuple[str, int], known: set[threading.Thread]) -> bool:
    """True once Fabric's forwarder thread (not another process) listens on ``address``."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        manager = _manager(address, known)
        if manager is not None and port_listening(address[1]):
            time.sleep(0.02)  # a forwarder whose bind failed (the port was taken) has ended by now
            return bool(manager.is_alive())
        if manager is not None and not manager.is_alive():
            return False
        time.sleep(0.005)
    return False


@contextmanager
def open_tunnel(target: Target, host: str, port: int, *, what: str) -> Iterator[tuple[str, int]]:
    """``(address, port)`` on the controller that reaches ``host:port`` as the target host sees it."""
    if target.host.is_local:
        yield host, port
        return
    from invoke.exceptions import ThreadException

    target.open()  # SSH failures: UnreachableError with the seam's wording
    conn = target.connection()
    where = f"{what} at {host}:{port} (through SSH)"
    try:
        conn.transport.open_channel("direct-tcpip", (host, port), (LOOPBACK, 0), timeout=10).close()
    except Exception as exc:  # noqa: BLE001 - paramiko.ChannelException, SSHException, EOFError
        raise _fail(target, f"{where}: {describe_channel_error(exc)}") from None
    address = (LOOPBACK, free_loopback_port())
    known = set(threading.enumerate())
    body_error: BaseException | None = None
    try:
        with conn.forward_local(local_port=address[1], remote_port=port, remote_host=host, local_host=LOOPBACK):
            if not _wait_listening(address, known):
                raise _fail(target, f"{where}: the SSH port forward could not listen on {address[0]}:{address[1]}")
            try:
                yield address
            except BaseException as exc:
                body_error = exc
                raise
    except ThreadException as exc:
        errors = flatten_thread_errors(exc)
        refused = [e for e in errors if type(e).__name__ == "ChannelException"]
        if refused:
            raise _fail(target, f"{where}: the tunnel failed: {describe_channel_error(refused[0])}") from None
        if body_error is not None:  # a socket reset in a tunnel thread is a symptom: the block's error says why
            raise body_error from None
        # the conversation completed; a connection reset seen by a tunnel thread afterwards is no failure


def flatten_thread_errors(exc: BaseException) -> list[BaseException]:
    """The exceptions inside Fabric's (nested) ThreadException: the forwarder's and its tunnels'."""
    from invoke.exceptions import ThreadException

    if not isinstance(exc, ThreadException):
        return [exc]
    return [e for wrapper in exc.exceptions for e in flatten_thread_errors(wrapper.value)]
