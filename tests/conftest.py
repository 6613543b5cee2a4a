"""Shared pytest fixtures: real services on free loopback ports (see services.py).

- ``free_port``      the helper function itself (``free_port() -> int``)
- ``sshd``           session: SshServer, one sshd on 127.0.0.2 ... 127.0.0.7, same port
- ``redis_factory``  session: ``start(name, *, password=None, appendonly=False) -> RedisServer``
- ``redis_server``   session: one RedisServer (no password) from the factory
- ``s3_server``      session: S3Server (SeaweedFS), started only when a test requests it
- ``loop_fs``        function: ``make(kind) -> LoopFilesystem``: btrfs or XFS (reflink) on a loop device
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

if __package__:  # tests/ is a package (rootdir on sys.path)
    from . import filesystems, services
else:  # pytest's default "prepend" import mode puts tests/ itself on sys.path
    import filesystems  # type: ignore[no-redef]
    import services  # type: ignore[no-redef]


def _timed(what: str, start: float) -> None:
    print(f"\n[services] {what} ready in {time.monotonic() - start:.2f}s")


@pytest.fixture(scope="session", name="free_port")
def free_port_fixture() -> Callable[[], int]:
    return services.free_port


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.SshServer]:
    t0 = time.monotonic()
    server = services.start_sshd(tmp_path_factory.mktemp("sshd"))
    _timed("sshd", t0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.RedisFactory]:
    factory = services.RedisFactory(tmp_path_factory.mktemp("redis"))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def redis_server(redis_factory: services.RedisFactory) -> services.RedisServer:
    t0 = time.monotonic()
    server = redis_factory("main")
    _timed("redis", t0)
    return server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.S3Server]:
    t0 = time.monotonic()
    server = services.start_s3(tmp_path_factory.mktemp("s3"))
    _timed("s3 (seaweedfs)", t0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def loop_fs(tmp_path: Path) -> Iterator[Callable[[str], filesystems.LoopFilesystem]]:
    """Make real btrfs / XFS filesystems on loop devices; all unmounted and removed afterwards."""
    made: list[filesystems.LoopFilesystem] = []

    def make(kind: str, size_mb: int = 512) -> filesystems.LoopFilesystem:
        missing = filesystems.missing_tools(kind)
        if missing:
            pytest.fail(f"{kind} tests need {', '.join(missing)}: run scripts/setup.sh (installs btrfs-progs, xfsprogs)")
        fs = filesystems.LoopFilesystem.make(kind, tmp_path / f"fs-{kind}-{len(made)}", size_mb)
        made.append(fs)
        return fs

    try:
        yield make
    finally:
        for fs in made:
            fs.stop()
