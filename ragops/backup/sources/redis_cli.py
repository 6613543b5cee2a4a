"""The live Redis of a Compose stack that has no port on the host: ``redis-cli`` in its container.

A redis service reachable only on its container network (no ``network_mode: host``, no published
``redis.port``) cannot be reached by redis-py from the controller, not even through the SSH tunnel
(that ends on the host). The redis image ships ``redis-cli``, so for that case only each command is::

    [DOCKER_HOST=..] docker exec -i [-e REDISCLI_AUTH] CONTAINER redis-cli -e --no-auth-warning
        -h 127.0.0.1 -p PORT [--user USER] ARGS...

through the seam (the password read on stdin into the host shell's ``REDISCLI_AUTH`` and handed to
the container by ``-e NAME``: never in argv). ``-e``: an error reply is exit 1 (and its text).

It answers what backups ask of the live server (INFO, CONFIG GET, LASTSAVE, TIME, BGSAVE,
BGREWRITEAOF: :mod:`.redis_commands` reads its replies like redis-py's raw ones); no key sample
(``can_sample`` False: redis-cli's text replies are not binary-safe) and no TLS (the certificates
are the controller's files: :func:`check_cli_settings`).
"""

from __future__ import annotations

from typing import Any

from ...config import RedisSettings
from ...errors import ConfigError, StepError
from ...seam import Target, quote
from .container_scripts import make_docker_prefix

SECRET = "REDISCLI_AUTH"
LIST_REPLIES = ("CONFIG", "TIME")


def check_cli_settings(target: Target, container: str, r: RedisSettings) -> None:
    if r.tls:
        raise ConfigError(f"{target.name}: redis.tls is set but the Compose Redis in {container} has no port on the "
                          "host (only redis-cli in its container reaches it, without the controller's certificates): "
                          "publish redis.port on 127.0.0.1 or use network_mode: host")


def make_cli_command(docker: str, container: str, port: int, args: list[str], *, username: str | None = None,
                     password: bool = False) -> str:
    """``docker exec ... redis-cli -e ... ARGS`` (``docker`` is already a shell prefix)."""
    parts = [docker, "exec", "-i", *(["-e", SECRET] if password else []), quote(container), "redis-cli", "-e",
             "--no-auth-warning", "-h", "127.0.0.1", "-p", str(int(port))]
    parts += ["--user", quote(username)] if username else []
    return " ".join([*parts, *(quote(str(a)) for a in args)])


def parse_reply(command: str, stdout: str) -> Any:
    """redis-cli's (non-tty) output as the raw reply redis-py would give for these commands."""
    body = stdout[:-1] if stdout.endswith("\n") else stdout
    if command.upper() in LIST_REPLIES:
        return [line.encode() for line in body.splitlines()]
    if body.lstrip("-").isdigit():
        return int(body)
    return body.encode()


class CliClient:
    """``execute_command`` through ``redis-cli`` in the redis container (see the module doc)."""

    can_sample = False

    def __init__(self, target: Target, container: str, port: int, password: str | None) -> None:
        check_cli_settings(target, container, target.settings.redis)
        self.target, self.container, self.port, self.password = target, container, port, password
        self.docker = make_docker_prefix(target.settings.docker)
        self.where = f"127.0.0.1:{port} in container {container} (redis-cli)"

    def execute_command(self, *args: Any) -> Any:
        cmd = make_cli_command(self.docker, self.container, self.port, [str(a) for a in args],
                               username=self.target.settings.redis.username, password=bool(self.password))
        res = self.target.run(cmd, timeout=max(60.0, self.target.settings.redis.timeout_s),
                              secrets={SECRET: self.password} if self.password else None)
        if not res.ok:
            detail = (res.stderr.strip() or res.stdout.strip())[-300:]
            raise StepError(f"{self.target.name}: redis {args[0]} on {self.where} failed (exit {res.exited}): {detail}")
        return parse_reply(str(args[0]), res.stdout)
