"""Redis helpers shared by backup and restore test: ``redis_probe.py`` arguments, THE throwaway server.

:func:`make_server_command` is the one launcher of a throwaway ``redis-server`` (loads a dump or an
AOF, saves nothing, unix socket or loopback port); :func:`run_dump_digest` loads a staged dump in one
and probes it (per-db counts, sample digest); :func:`run_remote_probe` asks the live server.
"""

from __future__ import annotations

from typing import Any

from ...errors import StepError
from ...resources import wrap_capped
from ...seam import Target, quote
from . import make_copy_command, parse_json_line, run_or_fail
from .hooks import HostScripts, Scripts


def make_probe_args(mode: str, *, host: str | None = None, port: int | None = None, socket: str | None = None,
                    extra: list[str] | None = None) -> list[str]:
    """Arguments of ``ragops/remote/redis_probe.py`` for one server (TCP or unix socket)."""
    where = ["--socket", socket] if socket else ["--host", host or "127.0.0.1", "--port", str(int(port or 6379))]
    return [mode, *where, *(extra or [])]


def make_server_command(server: str, directory: str, *, port: int | None = None, socket: str | None = None,
                        run_dir: str | None = None, dbfilename: str = "dump.rdb", aof_dir: str | None = None) -> str:
    """THE throwaway redis-server: loads ``directory``'s dump (or AOF), saves nothing, daemonized with
    a pidfile and a log in ``run_dir`` (default: ``directory``); on a unix socket (no TCP port) or on
    127.0.0.1:PORT (protected mode)."""
    run_dir = run_dir or directory
    args = [server]
    if socket:
        args += ["--port", "0", "--unixsocket", socket, "--unixsocketperm", "700"]
    else:
        args += ["--port", str(int(port or 0)), "--bind", "127.0.0.1", "--protected-mode", "yes"]
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


def run_dump_digest(target: Target, data_dir: str, *, dbfilename: str = "dump.rdb", aof_dir: str | None = None,
                    sample: int = 256, timeout: float = 600, server: str = "redis-server") -> dict[str, Any]:
    """Load a dump in a throwaway redis-server on the host and probe it (counts, sample digest).

    The server only reads ``data_dir/dbfilename`` (no saving, ``SHUTDOWN NOSAVE``, then SIGKILL), so
    the dump may be a hard link to the live one. Raises StepError if the dump does not load. Always
    stops the throwaway server."""
    scripts = HostScripts(target)
    scratch = run_or_fail(target, "mktemp -d /tmp/ragops-redis.XXXXXX", "mktemp", write=False).strip()
    sock = f"{scratch}/redis.sock"
    try:
        if aof_dir:  # the server appends to the AOF it loads: load a scratch copy, not the staged files
            run_or_fail(target, f"mkdir {quote(scratch)}/data && " + make_copy_command(f"{data_dir}/{aof_dir}", f"{scratch}/data/{aof_dir}"),
                        "copying the AOF for its load test", write=False)
            data_dir = f"{scratch}/data"
        start = target.run(wrap_capped(target, make_server_command(server, data_dir, socket=sock, run_dir=scratch,
                                               dbfilename=dbfilename, aof_dir=aof_dir)))
        wait = scripts.run_script("redis_probe", make_probe_args("wait", socket=sock, extra=["--wait", str(int(timeout))]))
        if not start.ok or not parse_json_line(wait.stdout, "redis load").get("ok"):
            log = target.run(f"tail -n 5 {quote(scratch)}/redis.log 2>/dev/null").stdout.strip()
            raise StepError(f"{target.name}: the staged Redis dump in {data_dir} does not load: {log or start.stderr.strip()}")
        res = scripts.run_script("redis_probe", make_probe_args("probe", socket=sock, extra=["--sample", str(int(sample))]))
        doc = parse_json_line(res.stdout, "redis probe")
        if not doc.get("ok"):
            raise StepError(f"{target.name}: probing the staged Redis dump failed: {doc.get('error')}")
        return doc
    finally:  # the stop command ends with `exit`: in a subshell, or the rm -rf never runs (it did not:
        # ~40 /tmp/ragops-redis.* dirs were left per CI run). SIGKILL and wait, no graceful SHUTDOWN
        # first: that removes the pid file, and then there is nothing to wait for
        target.run(f"( {make_server_stop_command(scratch)} ); rm -rf -- {quote(scratch)}")


def run_remote_probe(target: Target, mode: str, password: str | None, *, write: bool = False,
                     extra: list[str] | None = None) -> dict[str, Any]:
    """``redis_probe.py MODE`` against the host's live Redis (``redis:`` settings; password on stdin)."""
    r = target.settings.redis
    scripts: Scripts = HostScripts(target)
    host, port, where = r.host, r.port, f"{r.host}:{r.port}"
    if target.settings.docker.data_tasks == "containers":  # in the redis service's container (docker exec)
        from .redis_containers import make_live

        scripts, host, port, container = make_live(target)
        where = f"{host}:{port} in container {container.name}"
    res = scripts.run_script("redis_probe", make_probe_args(mode, host=host, port=port, extra=extra),
                             write=write, secrets={"REDISCLI_AUTH": password} if password else None)
    if res.dry:
        return {"ok": True, "dry": True}
    doc = parse_json_line(res.stdout, f"redis {mode}")
    if not doc.get("ok"):
        raise StepError(f"{target.name}: redis {mode} on {where} failed: {doc.get('error')}")
    return doc


def parse_result(res: Any, what: str) -> dict[str, Any]:
    """A remote script's JSON result, or ``{"ok": False, "error": ...}`` when it printed none."""
    try:
        return parse_json_line(res.stdout, what)
    except StepError:
        return {"ok": False, "error": f"{what}: no result (exit {res.exited}): {(res.stderr or res.stdout).strip()[-300:]}"}
