"""The Redis source on a Compose host (``docker.data_tasks: containers``).

- The live server is asked (INFO, CONFIG GET, LASTSAVE, BGSAVE) with redis-py like on a bare host,
  at ``redis.host:redis.port`` as the host sees it (``network_mode: host``, or the port published
  there). Only a Redis with no port on the host is asked with ``docker exec CONTAINER redis-cli``
  on 127.0.0.1 and Redis' port INSIDE the container (:func:`~.compose_roles.redis_container_port`,
  :mod:`.redis_cli`); the password still travels on stdin.
- Its ``dir`` (``CONFIG GET dir``, e.g. ``/data``) is a container path: :func:`run_host_dir` maps
  it to the volume's mount point on the host, where the dump is hard-linked into the staging dir.
- ``redis-check-rdb`` (backup and restore test) runs in a throwaway container of the redis
  service's image, the dump's dir mounted read-only (:func:`run_check_rdb`).
- ``dump_check: load`` at backup time loads the staged dump in such a container, the dump and its
  config file mounted read-only (:func:`run_dump_digest_in_container`).
- The restore test's throwaway ``redis-server`` is a container of that image too
  (:func:`make_server_command`): ``--network host`` bound to 127.0.0.1 only (protected mode, a free
  port, the per-run password in its config file in the mounted scratch dir: redis-py reaches it,
  through the tunnel for a remote host), saving nothing; it is waited for while its container runs
  (:func:`make_container_check`: a server that crashed on the dump answers at once) and removed
  with ``docker rm -f`` by the source's ``end`` (also after a failure or SIGTERM).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import ConfigError, StepError
from ...redis_client import open_throwaway
from ...seam import CmdResult, Target, quote
from . import run_or_fail
from .compose_roles import ServiceContainer, describe_container, run_discover
from .container_scripts import make_docker_prefix
from .hooks import HostScripts
from .redis_commands import read_probe
from .redis_server import make_password, run_write_conf
from .throwaway import Mount, make_name, make_run_command, run_remove, run_tool

SERVER_PURPOSE = "redis-load"


def run_container(target: Target) -> ServiceContainer:
    c = run_discover(target).container("redis", target.name)
    if not c.running:
        raise StepError(f"{target.name}: the redis container {c.name} is {c.state}: start it first "
                        f"(docker start {c.name})")
    return c


def run_host_dir(target: Target, container: ServiceContainer, inside: str) -> str:
    """Redis' dir (a container path) on the host; ConfigError when it is not on a volume or bind mount."""
    host = container.host_path(inside)
    if host is None:
        raise ConfigError(f"{target.name}: Redis' dir {inside} in container {container.name} is not on a volume or bind "
                          "mount: its dump would be lost with the container; mount a volume there")
    return host


def describe(container: ServiceContainer, inside: str) -> dict[str, object]:
    return describe_container(container, inside)


def run_check_rdb(target: Target, check_rdb: str, path: str, image: str | None = None) -> CmdResult:
    """``redis-check-rdb PATH`` in a throwaway container of the redis image (the file's dir read-only)."""
    image = image or run_discover(target).container("redis", target.name).image_id
    directory = path.rsplit("/", 1)[0] or "/"
    return run_tool(target, image, check_rdb, [path], [Mount(directory)], purpose="redis-check")


def make_server_command(docker: str, image: str, name: str, directory: str, port: int,
                        aof_dir: str | None = None, conf: str | None = None, conf_dir: str | None = None) -> str:
    """THE throwaway redis-server, as a container: loads ``directory``'s dump (or AOF), saves nothing;
    ``conf``: its config file, the password (in ``directory``, or in ``conf_dir``: then both are
    mounted read-only, e.g. the staged dump at backup time, which must not change)."""
    args = [*([conf] if conf else []), "--port", str(int(port)), "--bind", "127.0.0.1", "--protected-mode", "yes", "--dir", directory,
            "--dbfilename", "dump.rdb", "--daemonize", "no", "--save", ""]
    args += ["--appendonly", "yes", "--appenddirname", aof_dir] if aof_dir else ["--appendonly", "no"]
    mounts = [Mount(directory), Mount(conf_dir)] if conf_dir else [Mount(directory, read_only=False)]
    return make_run_command(docker, image, "redis-server", args, name=name, purpose=SERVER_PURPOSE,
                            mounts=mounts, network="host", detach=True)


def run_start_server(target: Target, name: str, directory: str, port: int, aof_dir: str | None = None, *,
                     conf: str | None = None) -> CmdResult:
    """Start the throwaway server container ``name`` (a read of the snapshot: also under --dry). The
    caller records the name first: a signal during ``docker run -d`` may leave the container created."""
    image = run_discover(target).container("redis", target.name).image_id
    docker = make_docker_prefix(target.settings.docker)
    return target.run(make_server_command(docker, image, name, directory, port, aof_dir, conf))


def run_dump_digest_in_container(target: Target, data_dir: str, *, sample: int, timeout: float) -> dict[str, Any]:
    """``dump_check: load`` on a Compose host: ``data_dir``'s dump.rdb (the staged copy, mounted
    read-only) loaded by a throwaway redis-server container of the redis service's image, probed with
    redis-py (counts, sample digest). Raises StepError if it does not load; the container and its
    scratch dir (config file with the per-run password) are always removed."""
    scratch = run_or_fail(target, "mktemp -d /tmp/ragops-redis.XXXXXX", "mktemp", write=False).strip()
    name = make_name(SERVER_PURPOSE)
    docker = make_docker_prefix(target.settings.docker)
    try:
        password = make_password()
        conf = run_write_conf(target, scratch, password)
        target.run(f"chmod 0755 {quote(scratch)} && chmod 0644 {quote(conf)}")  # read by the image's user
        image = run_discover(target).container("redis", target.name).image_id
        port = int(HostScripts(target).run_script("free_port", []).stdout.strip())
        started = target.run(make_server_command(docker, image, name, data_dir, port, conf=conf, conf_dir=scratch))
        if not started.ok:
            raise StepError(f"{target.name}: the staged Redis dump in {data_dir} does not load: the throwaway "
                            f"container did not start: {(started.stderr or started.stdout).strip()[-300:]}")
        with open_throwaway(target, port, password, wait_s=timeout, check=make_container_check(target, name)) as client:
            return {"ok": True, **read_probe(client, int(sample))}
    finally:
        run_remove(target, docker, name)
        target.run(f"rm -rf -- {quote(scratch)}")


def make_container_check(target: Target, name: str) -> Callable[[], None]:
    """``check()`` for the wait (:func:`ragops.redis_client.open_throwaway`): raises StepError, with
    its log tail, once the throwaway server's container is no longer running."""
    docker = make_docker_prefix(target.settings.docker)

    def check() -> None:
        state = target.run(f"{docker} inspect -f '{{{{.State.Status}}}}' {quote(name)}").stdout.strip()
        if state != "running":
            log = target.run(f"{docker} logs --tail 5 {quote(name)} 2>&1").stdout.strip()
            raise StepError(f"{target.name}: the throwaway redis-server container {name} is {state or 'gone'}: {log[-400:]}")

    return check


def run_remove_server(target: Target, name: str) -> None:
    run_remove(target, make_docker_prefix(target.settings.docker), name)
