"""ragops.space on real filesystems: a private 64 MiB tmpfs (mounted per test, unmounted in teardown),
real du/df through the seam, locally and over SSH."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ragops.config import Host, HostEntry, HostSettings
from ragops.errors import SpaceError
from ragops.seam import Target
from ragops.space import make_floor, parse_df, run_size_of, run_space_preflight

MIB = 1024 * 1024


def local(**disk: int) -> Target:
    settings = HostSettings.model_validate({"disk": disk} if disk else {})
    return Target(host=Host(name="local", entry=HostEntry(), settings=settings, source="test"))


@pytest.fixture
def tmpfs(tmpfs_mount: Callable[..., Path]) -> Path:
    return tmpfs_mount("ragops-test-fs")


def fill(path: Path, mib: int) -> Path:
    with open(path, "wb") as fh:
        for _ in range(mib):
            fh.write(os.urandom(MIB))
    return path


def test_the_floor_is_the_larger_of_min_free_percent_and_what_fail_percent_leaves() -> None:
    assert make_floor(1000, 10, 90) == 100
    assert make_floor(1000, 10, 70) == 300  # fail_percent 70: 30% must stay free
    assert make_floor(1000, 25, 95) == 250
    assert make_floor(1000, 0, 100) == 0


def test_df_output_with_a_mount_point_holding_spaces_parses() -> None:
    fs = parse_df("Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/sdb1 1000 400 600 40% /mnt/my data\n")
    assert (fs.device, fs.size, fs.used, fs.avail, fs.mount) == ("/dev/sdb1", 1000, 400, 600, "/mnt/my data")


def test_a_write_that_would_cross_the_floor_is_refused_naming_the_filesystem_need_free_and_floor(tmpfs: Path) -> None:
    target = local()
    with pytest.raises(SpaceError) as info:
        run_space_preflight(target, str(tmpfs / "not" / "yet" / "there"), 60 * MIB, what="test copy")
    text = str(info.value)
    assert text.startswith("local: test copy needs 60.0 MiB on ")
    assert f"on {tmpfs} (ragops-test-fs)" in text and "64.0 MiB" in text
    assert "at least 6.4 MiB must stay free (disk.min_free_percent 10%, disk.fail_percent 90%)" in text
    assert "refused before writing anything" in text and not (tmpfs / "not").exists()
    run_space_preflight(target, str(tmpfs / "not" / "yet" / "there"), 50 * MIB, what="test copy")  # 14 MiB left: fits


def test_fail_percent_raises_the_floor_above_min_free_percent(tmpfs: Path) -> None:
    run_space_preflight(local(), str(tmpfs), 40 * MIB, what="copy")
    with pytest.raises(SpaceError, match=r"at least 32.0 MiB must stay free .*disk.fail_percent 50%"):
        run_space_preflight(local(fail_percent=50, warn_percent=50), str(tmpfs), 40 * MIB, what="copy")


def test_space_already_used_on_the_filesystem_counts(tmpfs: Path) -> None:
    fill(tmpfs / "ballast", 40)
    with pytest.raises(SpaceError, match=r"which has 24.0 MiB free of 64.0 MiB; .* it would leave 4.0 MiB"):
        run_space_preflight(local(), str(tmpfs), 20 * MIB, what="copy")


def test_size_of_counts_a_sparse_file_at_its_full_apparent_size_and_a_missing_path_as_zero(tmpfs: Path) -> None:
    tree = tmpfs / "tree"
    (tree / "sub").mkdir(parents=True)
    fill(tree / "sub" / "dense.bin", 3)
    with open(tree / "sparse.bin", "wb") as fh:  # 8 MiB apparent, 4 KiB allocated
        fh.seek(8 * MIB - 4096)
        fh.write(b"x" * 4096)
    size = run_size_of(local(), [str(tree), str(tmpfs / "missing")])
    assert 11 * MIB <= size < 11 * MIB + 64 * 1024
    assert run_size_of(local(), []) == 0


def test_size_and_preflight_run_on_the_host_over_ssh(sshd, tmpfs: Path) -> None:
    entry = HostEntry(address="127.0.0.2", port=sshd.port, user=sshd.user, key_file=sshd.key_file,
                      known_hosts=sshd.known_hosts, connect_timeout_s=5.0)
    target = Target(host=Host(name="h2", entry=entry, settings=HostSettings(), source="test"))
    try:
        fill(tmpfs / "data.bin", 2)
        assert run_size_of(target, [str(tmpfs / "data.bin")]) == 2 * MIB
        with pytest.raises(SpaceError, match=r"^h2: copy needs 62.0 MiB on .*\(ragops-test-fs\)"):
            run_space_preflight(target, str(tmpfs / "staging"), 62 * MIB, what="copy")
    finally:
        target.close()
