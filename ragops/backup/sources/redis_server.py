"""Redis helpers shared by backup and restore test: the live conversation, THE throwaway server.

- :func:`open_live`: the host's live Redis, through redis-py (:func:`ragops.redis_client.open_redis`:
  directly for ``local``, through ONE SSH tunnel per conversation for a remote host; TLS and the ACL
  user of ``redis:``), or, for a Compose Redis with no port on the host only, ``redis-cli`` in its
  container (:mod:`.redis_cli`). :func:`run_live` turns a failed command into one StepError.
- :func:`make_server_command` is the one launcher of a throwaway ``redis-server`` (loads a dump or
  an AOF, saves nothing, on 127.0.0.1:PORT with protected mode and a per-run random password that
  only its config file holds: :func:`make_conf_command`; never argv, which ``ps`` shows).
- :func:`run_dump_digest` loads a staged dump in one and probes it (per-db counts, sample digest)
  with redis-py (:func:`ragops.redis_client.open_throwaway`, tunnelled for a remote host).
"""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ...errors import StepError
from ...redis_client import open_redis, open_throwaway
from ...resources import wrap_capped
from ...seam import Target, quote
from ...secrets import read_redis_password
from . import make_copy_command, parse_json_line, run_or_fail
from .hooks import HostScripts
from .redis_commands import RedisCommandError, read_probe

T = TypeVar("T")
CONF_NAME = "redis.conf"
PASSWORD_VAR = "RAGOPS_REDIS_THROWAWAY_PW"


# -- the live server ----------------------------------------------------------------------------

def is_cli_only(target: Target, container: Any) -> bool:
    """A Compose Redis that the host cannot reach on ``redis.port`` (no host network, not published there)."""
    if container.network_mode == "host":
        return False
    port = str(target.settings.redis.port)
    return not any(str((b or {}).get("HostPort")) == port for bindings in container.ports.values() for b in bindings or [])


@contextmanager
def open_live(target: Target) -> Iterator[Any]:
    """A raw client of the live Redis (see the module doc), closed (tunnel included) at the end."""
    if target.settings.docker.data_tasks == "containers":
        from .redis_containers import run_container

        container = run_container(target)
        if is_cli_only(target, container):
            from .compose_roles import redis_container_port
            from .redis_cli import CliClient

            yield CliClient(target, container.name, redis_container_port(target, container),
                            read_redis_password(target.settings.redis))
            return
    with open_redis(target, raw=True) as client:
        yield client


def run_live(target: Target, what: str, call: Callable[[], T]) -> T:
    """``call()`` (commands on an open client); a save that failed or stuck is one StepError."""
    try:
        return call()
    except RedisCommandError as exc:
        r = target.settings.redis
        raise StepError(f"{target.name}: redis {what} on {r.host}:{r.port} failed: {exc}") from None


def make_stat_command(path: str) -> str:
    """``lstat`` of the dump on the host: ``TYPE|SIZE|MTIME_NS`` (nothing when absent)."""
    return f"stat -c '%F|%s|%.9Y' -- {quote(path)} 2>/dev/null || true"


def run_stat_dump(target: Target, path: str) -> dict[str, Any] | None:
    """The dump's stat for :func:`~.redis_stage.make_save_decision` (not followed if a symlink)."""
    out = target.run(make_stat_command(path)).stdout.strip()
    kind, _, rest = out.partition("|")
    size, _, mtime = rest.partition("|")
    if not kind or not size.isdigit():
        return None
    seconds, _, frac = mtime.partition(".")
    mtime_ns = int(seconds or 0) * 1_000_000_000 + int((frac + "000000000")[:9])
    return {"path": path, "regular": kind.startswith("regular"), "size": int(size), "mtime_ns": mtime_ns}


# -- THE throwaway server -----------------------------------------------------------------------

def make_password() -> str:
    return _secrets.token_hex(24)


def make_conf_command(conf: str) -> str:
    """Write the throwaway server's config file (mode 0600): its password, from the secret
    variable the seam reads on stdin (``printf`` is a shell builtin: not in any argv)."""
    return f"umask 077 && printf 'requirepass %s\\n' \"${PASSWORD_VAR}\" > {quote(conf)}"


def run_write_conf(target: Target, directory: str, password: str) -> str:
    """The config file in ``directory`` (a read's scratch: runs under --dry too)."""
    conf = f"{directory}/{CONF_NAME}"
    run_or_fail(target, make_conf_command(conf), "writing the throwaway redis-server's config", write=False,
                secrets={PASSWORD_VAR: password})
    return conf


def make_server_command(server: str, directory: str, *, port: int, run_dir: str | None = None,
                        dbfilename: str = "dump.rdb", aof_dir: str | None = None, conf: str | None = None) -> str:
    """THE throwaway redis-server: loads ``directory``'s dump (or AOF), saves nothing, daemonized with
    a pidfile and a log in ``run_dir`` (default: ``directory``), on 127.0.0.1:PORT (protected mode);
    ``conf``: its config file (the password), read first."""
    run_dir = run_dir or directory
    args = [server, *([conf] if conf else []), "--port", str(int(port)), "--bind", "127.0.0.1", "--protected-mode", "yes"]
    args += ["--dir", directory, "--dbfilename", dbfilename, "--daemonize", "yes", "--pidfile", f"{run_dir}/redis.pid",
             "--logfile", f"{run_dir}/redis.log"]
    args += ["--appendonly", "yes", "--appenddirname", aof_dir] if aof_dir else ["--appendonly", "no"]
    return " ".join(quote(a) for a in args) + " --save ''"


def make_server_stop_command(run_dir: str) -> str:
    """Stop the throwaway server whose pidfile is in ``run_dir`` (no-op without one)."""
    pid = quote(f"{run_dir}/redis.pid")
    # SIGKILL on purpose: the throwaway server saves nothing. It is gone once it is a zombie: the
    # daemonized server's parent is init, which may reap it only later (kill -0 would still succeed).
    return (f"[ -f {pid} ] || exit 0; p=$(cat {pid}); kill -9 \"$p\" 2>/dev/null || exit 0; "
            "for i in $(seq 250); do case \"$(ps -o stat= -p \"$p\" 2>/dev/null)\" in ''|Z*) exit 0;; esac; "
            "sleep 0.02; done; exit 0")


def make_alive_command(run_dir: str) -> str:
    """Print ``alive``, ``nopid`` (not daemonized yet) or ``dead`` and the log's last lines."""
    d = quote(run_dir)
    return (f"p=$(cat {d}/redis.pid 2>/dev/null); if [ -z \"$p\" ]; then echo nopid; "
            "else case \"$(ps -o stat= -p \"$p\" 2>/dev/null)\" in ''|Z*) echo dead;; *) echo alive; exit 0;; esac; fi; "
            f"tail -n 4 {d}/redis.log 2>/dev/null | tr '\\n' ' '")


def make_alive_check(target: Target, run_dir: str, what: str, grace_s: float = 10.0) -> Callable[[], None]:
    """``check()`` for :func:`open_throwaway`'s wait: raises StepError once the server died (or never
    wrote its pidfile within ``grace_s``), with the end of its log."""
    import time

    started = time.monotonic()

    def check() -> None:
        out = target.run(make_alive_command(run_dir)).stdout.strip()
        state, _, log = out.partition("\n")
        if state == "dead" or (state == "nopid" and time.monotonic() - started > grace_s):
            why = "exited" if state == "dead" else f"wrote no pidfile within {grace_s:.0f}s"
            raise StepError(f"{target.name}: the throwaway redis-server {why} ({what}): {log.strip()[-400:] or 'no log'}")

    return check


def run_dump_digest(target: Target, data_dir: str, *, dbfilename: str = "dump.rdb", aof_dir: str | None = None,
                    sample: int = 256, timeout: float = 600, server: str = "redis-server") -> dict[str, Any]:
    """Load a dump in a throwaway redis-server on the host and probe it (counts, sample digest).

    The server only reads ``data_dir/dbfilename`` (it saves nothing and is SIGKILLed), so the dump
    may be a hard link to the live one. Raises StepError if the dump does not load. Always stops
    the throwaway server and removes its scratch dir."""
    scripts = HostScripts(target)
    scratch = run_or_fail(target, "mktemp -d /tmp/ragops-redis.XXXXXX", "mktemp", write=False).strip()
    try:
        if aof_dir:  # the server appends to the AOF it loads: load a scratch copy, not the staged files
            run_or_fail(target, f"mkdir {quote(scratch)}/data && " + make_copy_command(f"{data_dir}/{aof_dir}", f"{scratch}/data/{aof_dir}"),
                        "copying the AOF for its load test", write=False)
            data_dir = f"{scratch}/data"
        password = make_password()
        conf = run_write_conf(target, scratch, password)
        port = int(scripts.run_script("free_port", []).stdout.strip())
        start = target.run(wrap_capped(target, make_server_command(server, data_dir, port=port, run_dir=scratch,
                                                                   dbfilename=dbfilename, aof_dir=aof_dir, conf=conf)))
        if not start.ok:
            log = target.run(f"tail -n 5 {quote(scratch)}/redis.log 2>/dev/null").stdout.strip()
            raise StepError(f"{target.name}: the staged Redis dump in {data_dir} does not load: {log or start.stderr.strip()}")
        check = make_alive_check(target, scratch, f"loading the staged dump in {data_dir}")
        with open_throwaway(target, port, password, wait_s=timeout, check=check) as client:
            return {"ok": True, **read_probe(client, int(sample))}
    finally:  # the stop command ends with `exit`: in a subshell, or the rm -rf never runs (it did not:
        # ~40 /tmp/ragops-redis.* dirs were left per CI run). SIGKILL and wait, no graceful SHUTDOWN
        # first: that removes the pid file, and then there is nothing to wait for
        target.run(f"( {make_server_stop_command(scratch)} ); rm -rf -- {quote(scratch)}")


def parse_result(res: Any, what: str) -> dict[str, Any]:
    """A remote script's JSON result, or ``{"ok": False, "error": ...}`` when it printed none."""
    try:
        return parse_json_line(res.stdout, what)
    except StepError:
        return {"ok": False, "error": f"{what}: no result (exit {res.exited}): {(res.stderr or res.stdout).strip()[-300:]}"}
