"""redis-py clients for a host's Redis (its ``redis:`` settings): how ragops talks to Redis.

``with open_redis(target) as client:`` yields a ``redis.Redis`` (one connection, str replies):

- the local host: straight to ``redis.host:redis.port``;
- a remote host: through an SSH tunnel (:func:`ragops.tunnel.open_tunnel`, Fabric's
  ``Connection.forward_local``) to ``redis.host:redis.port`` as the host sees it; closed when the
  block ends, also on errors;
- ``redis.tls``: TLS with ``tls_ca_file`` / ``tls_cert_file`` / ``tls_key_file`` (files on the
  controller). The certificate is checked against ``redis.host`` also through the tunnel (the
  socket goes to the tunnel's end, the TLS server name stays the host's: :func:`make_connection_class`);
- ``redis.username`` (an ACL user) with the password of ``password_file`` / ``password_env``
  (:mod:`ragops.secrets`): it only goes into redis-py's AUTH, never into argv, logs or messages.

``open_redis(target, raw=True)`` is the backups' client: bytes replies and no response callbacks
(RESP2 as sent: the sample digest hashes exact bytes). ``open_throwaway(target, port, password)``
reaches a throwaway redis-server ragops started on the host's ``127.0.0.1:PORT`` (no TLS, the
default user, its per-run password) the same way, optionally waiting while it starts and loads a
dump (``wait_s``; ``check()`` raises when the server died meanwhile).

Every failure (refused, timeout, wrong password, ACL denial, TLS) raised while opening or inside
the block becomes one :class:`RedisClientError` sentence naming the address and the setting to
check (:func:`describe_redis_error`), not a traceback.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from .config import RedisSettings
from .errors import ConfigError, StepError
from .seam import Target
from .secrets import read_redis_password
from .tunnel import TunnelError, open_tunnel


class RedisClientError(StepError):
    """Redis could not be reached or refused the conversation; the message says why (``reason``:
    the same without the host's name)."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def make_connection_class(tls: bool) -> type:
    """A redis-py connection class whose socket goes to ``route`` (the tunnel's end, or the
    address itself) while ``host`` (the TLS server name, the messages) stays the configured one."""
    import redis

    class RoutedConnection(redis.Connection):
        def __init__(self, *, route: tuple[str, int], **kwargs: Any) -> None:
            self.route = route
            super().__init__(**kwargs)

        def _connect(self) -> socket.socket:
            sock = socket.create_connection(self.route, timeout=self.socket_connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.socket_timeout)
            return sock

    if not tls:
        return RoutedConnection

    class RoutedTLSConnection(redis.SSLConnection, RoutedConnection):  # SSLConnection wraps RoutedConnection's socket
        pass

    return RoutedTLSConnection


def make_client_kwargs(r: RedisSettings, password: str | None, route: tuple[str, int], *,
                       decode: bool = True) -> dict[str, Any]:
    """The ``redis.ConnectionPool`` arguments for these settings (pure: no connection)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    kwargs: dict[str, Any] = {
        "connection_class": make_connection_class(r.tls), "route": route, "host": r.host, "port": r.port,
        "username": r.username, "password": password, "socket_timeout": r.timeout_s,
        "socket_connect_timeout": r.timeout_s, "decode_responses": decode, "max_connections": 1,
        "protocol": 2,  # RESP2: no HELLO before AUTH, INFO parsed the same on every server
        "retry": Retry(NoBackoff(), 0),  # one attempt: a health check reports, it does not wait out an outage
    }
    if r.tls:
        kwargs.update(ssl_ca_certs=r.tls_ca_file, ssl_certfile=r.tls_cert_file, ssl_keyfile=r.tls_key_file,
                      ssl_cert_reqs="required", ssl_check_hostname=r.tls_check_hostname)
    return kwargs


def check_tls_files(r: RedisSettings) -> None:
    missing = [f"redis.{name} = {path}" for name, path in
               (("tls_ca_file", r.tls_ca_file), ("tls_cert_file", r.tls_cert_file), ("tls_key_file", r.tls_key_file))
               if path and not os.path.isfile(os.path.expanduser(path))]
    if missing:
        raise ConfigError(f"redis: TLS file(s) not found on the controller: {', '.join(missing)}")


def describe_redis_error(exc: BaseException, where: str, r: RedisSettings) -> str:
    """One sentence for a redis-py error (``where``: "redis at 127.0.0.1:6379")."""
    import redis

    text = str(exc).strip() or type(exc).__name__
    user = f"user {r.username!r}" if r.username else "the default user"
    if isinstance(exc, redis.AuthenticationError) or "WRONGPASS" in text:
        if "NOAUTH" in text or "Authentication required" in text:
            return f"{where}: needs a password: set redis.password_file or redis.password_env"
        return f"{where}: authentication failed for {user} ({text}): check redis.username and the password"
    if isinstance(exc, redis.exceptions.NoPermissionError) or text.startswith("NOPERM"):
        return (f"{where}: {user} may not run this command ({text}): grant it in the ACL "
                "(see docs/health.md, docs/backup-redis.md)")
    if isinstance(exc, redis.TimeoutError):
        return f"{where}: timed out after {r.timeout_s:g}s (redis.timeout_s)"
    if isinstance(exc, redis.ConnectionError):
        low = text.lower()
        if "ssl" in low or "certificate" in low or "tls" in low:
            if "certificate_verify_failed" in low:
                fix = "the server's certificate was not accepted: check redis.tls_ca_file (and tls_check_hostname)"
            elif not r.tls_cert_file:
                fix = "no client certificate was sent: a server with tls-auth-clients yes needs redis.tls_cert_file"
            else:
                fix = "check redis.tls_ca_file / tls_cert_file / tls_key_file"
            return f"{where}: TLS failed ({text}): {fix}"
        if "refused" in low:
            return f"{where}: connection refused (is redis-server running on that port?)"
        if "closed by server" in low or "reset by peer" in low:
            hint = "" if r.tls else " (a TLS port? set redis.tls: true)"
            return f"{where}: the server dropped the connection{hint}: {text}"
        return f"{where}: cannot connect: {text}"
    return f"{where}: {type(exc).__name__}: {text}"


def _import_redis(target: Target) -> Any:
    try:
        import redis
    except ImportError:
        reason = "the redis package (redis-py, a dependency of ragops) is not installed on the controller"
        raise RedisClientError(f"{target.name}: {reason}", reason=reason) from None
    return redis


@contextmanager
def open_redis(target: Target, *, raw: bool = False) -> Iterator[Any]:
    """A connected ``redis.Redis`` for the target's Redis (PING answered); closed at the end.
    ``raw``: bytes replies, no response callbacks (the backups' RESP2 conversation)."""
    _import_redis(target)
    r = target.settings.redis
    check_tls_files(r)
    with _open(target, r, read_redis_password(r), raw=raw) as client:
        yield client


def make_throwaway_settings(port: int, timeout_s: float = 30.0) -> RedisSettings:
    """The settings of a throwaway redis-server on the host's loopback (plain TCP, default user)."""
    return RedisSettings(host="127.0.0.1", port=port, timeout_s=timeout_s)


@contextmanager
def open_throwaway(target: Target, port: int, password: str, *, wait_s: float = 0.0,
                   check: Callable[[], None] | None = None, timeout_s: float = 30.0) -> Iterator[Any]:
    """A raw client of the throwaway redis-server on the host's ``127.0.0.1:port``; with ``wait_s``
    retried (refused, LOADING) until it answers PING, ``check()`` between attempts (it raises when
    the server is gone, so a crashed server never costs ``wait_s``)."""
    _import_redis(target)
    with _open(target, make_throwaway_settings(port, timeout_s), password, raw=True, wait_s=wait_s,
               check=check, what="throwaway redis") as client:
        yield client


def _connect(redis: Any, r: RedisSettings, password: str | None, route: tuple[str, int], raw: bool) -> tuple[Any, Any]:
    pool = redis.ConnectionPool(**make_client_kwargs(r, password, route, decode=not raw))
    try:
        client = redis.Redis(connection_pool=pool, single_connection_client=True)  # connects + AUTH here
        client.ping()
    except BaseException:
        pool.disconnect()
        raise
    if raw:
        client.response_callbacks.clear()  # replies as sent (bytes, ints, lists), like RESP itself
    return client, pool


@contextmanager
def _open(target: Target, r: RedisSettings, password: str | None, *, raw: bool, wait_s: float = 0.0,
          check: Callable[[], None] | None = None, what: str = "redis") -> Iterator[Any]:
    import redis

    via = "" if target.host.is_local else " (through SSH)"
    where = f"{what} at {r.host}:{r.port}{via}"
    deadline = time.monotonic() + wait_s
    with ExitStack() as stack:
        while True:  # the tunnel's probe is refused until the server listens
            try:
                route = stack.enter_context(open_tunnel(target, r.host, r.port, what=what))
                break
            except TunnelError:
                if time.monotonic() >= deadline:
                    raise
                _pause(check)
        while True:  # refused (not listening yet), LOADING (reading its dump): again, while it lives
            try:
                client, pool = _connect(redis, r, password, route, raw)
                break
            except (redis.BusyLoadingError, redis.ConnectionError, redis.TimeoutError) as exc:
                if isinstance(exc, redis.AuthenticationError) or time.monotonic() >= deadline:
                    reason = describe_redis_error(exc, where, r)
                    raise RedisClientError(f"{target.name}: {reason}", reason=reason) from None
                _pause(check)
            except redis.RedisError as exc:
                reason = describe_redis_error(exc, where, r)
                raise RedisClientError(f"{target.name}: {reason}", reason=reason) from None
        try:
            yield client
        except redis.RedisError as exc:
            reason = describe_redis_error(exc, where, r)
            raise RedisClientError(f"{target.name}: {reason}", reason=reason) from None
        finally:
            client.close()
            pool.disconnect()  # before the tunnel closes: its forwarded connection then ends at once


def _pause(check: Callable[[], None] | None) -> None:
    if check is not None:
        check()
    time.sleep(0.05)
