"""restic fixtures for the backup tests (imported by conftest.py): real restic (Debian's 0.14,
and trixie's 0.18 when scripts/setup.d/30-restic.sh could fetch it), real repositories (local dir, sftp: to the test sshd,
s3: to the SeaweedFS fixture), Targets for the local host and for sshd "hosts".

- ``restic_bin``       parametrized: "restic" (0.14) and the 0.18 binary (skipped if absent)
- ``local_target``     Target for host ``local`` using Debian's restic
- ``make_target``      ``make_target(restic=..., address=None, dry=False) -> Target`` (address: over SSH)
- ``password_file``    a 0600 file holding a random repository password
- ``repo_settings``    ``repo_settings(kind="local"|"sftp"|"s3", name=...) -> RepositorySettings``
- ``data_tree``        a small tree of files (absolute path) to back up
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ragops.backup.policy import RepositorySettings
from ragops.config import Host, HostEntry, HostSettings
from ragops.seam import Target

RESTIC_NEW = Path(os.environ.get("RAGOPS_RESTIC_NEW_DIR", "/var/cache/ragops/restic-0.18")) / "usr/bin/restic"
S3_KEY_ENV, S3_SECRET_ENV, S3_PASSWORD_ENV = "RAGOPS_TEST_S3_KEY", "RAGOPS_TEST_S3_SECRET", "RAGOPS_TEST_RESTIC_PW"


def restic_new_or_skip() -> str:
    if not os.access(RESTIC_NEW, os.X_OK):
        pytest.skip(f"restic 0.18 not available at {RESTIC_NEW} (scripts/setup.d/30-restic.sh could not fetch it)")
    return str(RESTIC_NEW)


@pytest.fixture(params=["0.14", "0.18"])
def restic_bin(request: pytest.FixtureRequest) -> str:
    return "restic" if request.param == "0.14" else restic_new_or_skip()


def build_target(*, restic: str = "restic", sshd: Any = None, address: str | None = None, dry: bool = False) -> Target:
    settings = HostSettings.model_validate({"backup": {"restic": restic}})
    if address is None:
        return Target(host=Host(name="local", entry=HostEntry(), settings=settings, source="test"), dry=dry)
    entry = HostEntry(address=address, port=sshd.port, user=sshd.user, key_file=sshd.key_file,
                      known_hosts=sshd.known_hosts, connect_timeout_s=5.0)
    name = "h" + address.rsplit(".", 1)[1]
    return Target(host=Host(name=name, entry=entry, settings=settings, source="test"), dry=dry)


@pytest.fixture
def make_target(request: pytest.FixtureRequest) -> Iterator[Callable[..., Target]]:
    made: list[Target] = []

    def make(*, restic: str = "restic", address: str | None = None, dry: bool = False) -> Target:
        sshd = request.getfixturevalue("sshd") if address else None
        target = build_target(restic=restic, sshd=sshd, address=address, dry=dry)
        made.append(target)
        return target

    yield make
    for target in made:
        target.close()


@pytest.fixture
def local_target() -> Target:
    return build_target()


@pytest.fixture
def password_file(tmp_path: Path) -> str:
    path = tmp_path / "restic-password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(24) + "\n")
    return str(path)


@pytest.fixture
def repo_settings(request: pytest.FixtureRequest, tmp_path: Path, password_file: str,
                  monkeypatch: pytest.MonkeyPatch) -> Callable[..., RepositorySettings]:
    """``repo_settings(kind, name="repo")``: a fresh, not yet initialized repository of that kind."""

    def make(kind: str = "local", name: str = "repo") -> RepositorySettings:
        cache = str(tmp_path / "restic-cache")
        if kind == "local":
            return RepositorySettings(url=str(tmp_path / name), password_file=password_file, cache_dir=cache)
        if kind == "sftp":
            sshd = request.getfixturevalue("sshd")
            address = sshd.addresses[-1]
            return RepositorySettings(url=f"sftp:{sshd.user}@{address}:{tmp_path / name}", password_file=password_file,
                                      sftp_command=sshd.sftp_command(address), cache_dir=cache)
        if kind == "s3":
            s3 = request.getfixturevalue("s3_server")
            monkeypatch.setenv(S3_KEY_ENV, s3.access_key)
            monkeypatch.setenv(S3_SECRET_ENV, s3.secret_key)
            monkeypatch.setenv(S3_PASSWORD_ENV, "pw-" + secrets.token_hex(12))
            bucket = f"r-{name.replace('_', '-')}-{secrets.token_hex(4)}"
            return RepositorySettings.model_validate({
                "url": f"s3:{s3.endpoint}/{bucket}/restic", "password_env": S3_PASSWORD_ENV, "cache_dir": cache,
                "s3": {"access_key_env": S3_KEY_ENV, "secret_key_env": S3_SECRET_ENV, "region": s3.region}})
        raise ValueError(kind)

    return make


@pytest.fixture
def data_tree(tmp_path: Path) -> Path:
    """A small tree: text files, a subdirectory, an excluded-by-pattern file, binary data."""
    root = tmp_path / "data"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "app.yaml").write_text("model: all-MiniLM-L6-v2\n")
    (root / "conf" / "skip.tmp").write_text("scratch\n")
    (root / "blob.bin").write_bytes(os.urandom(64 * 1024))
    (root / "notes.txt").write_text("hello restic\n" * 100)
    return root
