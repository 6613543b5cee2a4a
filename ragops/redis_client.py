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

Every failure (refused, timeout, wrong password, ACL denial, TLS) raised while opening or inside
the block becomes one :class:`RedisClientError` sentence naming the address and the setting to
check (:func:`describe_redis_error`), not a traceback.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .config import RedisSettings
from .errors import ConfigError, StepError
from .seam import Target
from .secrets import read_redis_password
from .tunnel import open_tunnel


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


def make_client_kwargs(r: RedisSettings, password: str | None, route: tuple[str, int]) -> dict[str, Any]:
    """The ``redis.ConnectionPool`` arguments for these settings (pure: no connection)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    kwargs: dict[str, Any] = {
        "connection_class": make_connection_class(r.tls), "route": route, "host": r.host, "port": r.port,
        "username": r.username, "password": password, "socket_timeout": r.timeout_s,
        "socket_connect_timeout": r.timeout_s, "decode_responses": True, "max_connections": 1,
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
        return f"{where}: {user} may not run this command ({text}): grant it in the ACL (see docs/health.md)"
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


@contextmanager
def open_redis(target: Target) -> Iterator[Any]:
    """A connected ``redis.Redis`` for the target's Redis (PING answered); closed at the end."""
    try:
        import redis
    except ImportError:
        reason = "the redis package (redis-py, a dependency of ragops) is not installed on the controller"
        raise RedisClientError(f"{target.name}: {reason}", reason=reason) from None
    r = target.settings.redis
    check_tls_files(r)
    password = read_redis_password(r)
    via = "" if target.host.is_local else " (through SSH)"
    where = f"redis at {r.host}:{r.port}{via}"
    with open_tunnel(target, r.host, r.port, what="redis") as route:
        pool = redis.ConnectionPool(**make_client_kwargs(r, password, route))
        client = None
        try:
            client = redis.Redis(connection_pool=pool, single_connection_client=True)  # connects + AUTH here
            client.ping()
            yield client
        except redis.RedisError as exc:
            reason = describe_redis_error(exc, where, r)
            raise RedisClientError(f"{target.name}: {reason}", reason=reason) from None
        finally:
            if client is not None:
                client.close()
            pool.disconnect()  # before the tunnel closes: its forwarded connection then ends at once
