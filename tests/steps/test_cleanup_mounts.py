"""cleanup and mount points below a root: real bind mounts (same filesystem, so the same st_dev and
``-xdev`` alone does not stop them), private to a child process through ``unshare -m``; run as root."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.fleet_helpers import REPO, hash_tree, set_age, write_config

HELPER = Path(__file__).with_name("cleanup_in_namespace.py")
ODD = "m nt\\ [1]*?\t\nx"  # a mount point's name: space, backslash, glob characters, tab, newline


def _old(path: Path, data: bytes = b"o" * 10, days: float = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    set_age(path, days)
    return path


def _config(tmp_path: Path, root: Path) -> Path:
    return write_config(tmp_path / "cfg" / "ragops.yaml", {"defaults": {"logs": [{"root": str(root)}]}, "hosts": {}})


def _run_in_namespace(binds: list[tuple[Path, Path]], cfg: Path, shell: str, *modes: str,
                      mounted: Path | None = None) -> list[dict]:
    """``unshare -m``: bind mounts only this child sees (then ``mounted`` is created), then the
    helper running ragops' cleanup."""
    mounts = "".join(f"mount --bind {shlex.quote(str(s))} {shlex.quote(str(d))} && " for s, d in binds)
    if mounted:
        mounts += f"touch {shlex.quote(str(mounted))} && "
    argv = [sys.executable, str(HELPER), str(cfg), shell, *modes]
    proc = subprocess.run(["unshare", "-m", "sh", "-c", mounts + "exec " + shlex.join(argv)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _paths(run: dict) -> set[str]:
    return {p["path"] for r in run["details"]["roots"] for p in r["paths"]}


@pytest.mark.parametrize("shell", ["/bin/bash", "/bin/dash"])  # Invoke's default, and Debian's /bin/sh
def test_a_bind_mount_below_a_root_is_skipped_and_the_dry_run_lists_exactly_what_the_run_deletes(tmp_path, shell):
    root = tmp_path / "logs [x]*? dir"  # a root with spaces and glob characters
    source = tmp_path / "source"  # what the bind mounts show: old *.log files that are not the root's
    for rel in ("a.log", "sub/b.log", f"{ODD}/c.log"):
        _old(source / rel)
    secret = _old(tmp_path / "secret.log")
    deletable = {_old(root / "top.log"), _old(root / "sub dir" / "deep.log"), _old(root / "other" / "x.log")}
    kept = {_old(root / "new.log", days=0)}
    (root / "sub dir" / ODD).mkdir(parents=True)
    _old(root / "bound.log", b"", days=0)  # a file mount point: it shows secret.log's old mtime
    crossing, crossed = tmp_path / "crossing", tmp_path / "crossed"  # a root that may cross filesystems
    (crossing / "mnt").mkdir(parents=True)
    _old(crossed / "z.log")
    before, secret_bytes = hash_tree(source), secret.read_bytes()
    cfg = write_config(tmp_path / "cfg" / "ragops.yaml", {"defaults": {"logs": [
        {"root": str(root)}, {"root": str(crossing), "cross_filesystems": True}]}, "hosts": {}})
    binds = [(source, root / "sub dir" / ODD), (secret, root / "bound.log"), (crossed, crossing / "mnt")]
    dry, real = _run_in_namespace(binds, cfg, shell, "dry", "real")
    assert hash_tree(source) == before and secret.read_bytes() == secret_bytes
    assert dry["status"] == real["status"] == "ok", (dry["message"], real["message"])
    expected = {str(p) for p in deletable} | {str(crossing / "mnt" / "z.log")}
    assert _paths(dry) == _paths(real) == expected
    assert not any(p.exists() for p in deletable) and all(p.exists() for p in kept)
    assert not (crossed / "z.log").exists()  # cross_filesystems: true enters the mount, as configured
    skipped = real["details"]["roots"][0]["mounts_skipped"]
    assert sorted(skipped) == sorted([str(root / "sub dir" / ODD), str(root / "bound.log")])


RENAMER = """
import os, sys, time
a, b, go, stop = sys.argv[1:5]
deadline, count = time.monotonic() + 60, 0
while not os.path.exists(go) and time.monotonic() < deadline:  # the child has mounted a/m
    time.sleep(0.005)
while not os.path.exists(stop) and time.monotonic() < deadline:
    os.rename(a, b)
    os.rename(b, a)
    count += 1
print(count)
"""


def test_a_directory_above_a_mount_point_renamed_mid_run_never_exposes_the_mount(tmp_path):
    """The mount point itself cannot be renamed (EBUSY), the directories above it can: a loop renames
    root/a (holding the bind mount a/m) to root/b and back while cleanup runs 20 times."""
    root, source = tmp_path / "logs", tmp_path / "source"
    for i in range(20):
        _old(source / f"s{i}.log")
    before = hash_tree(source)
    (root / "a" / "m").mkdir(parents=True)
    go, stop = tmp_path / "go", tmp_path / "stop"
    renamer = subprocess.Popen([sys.executable, "-c", RENAMER, str(root / "a"), str(root / "b"), str(go), str(stop)],
                               stdout=subprocess.PIPE, text=True)
    try:
        runs = _run_in_namespace([(source, root / "a" / "m")], _config(tmp_path, root), "/bin/bash", *["real"] * 20,
                                 mounted=go)
    finally:
        stop.touch()
        renames = int(renamer.communicate(timeout=10)[0] or 0)
    assert hash_tree(source) == before
    assert len(runs) == 20 and renames > 100


def test_a_root_is_refused_when_mount_points_cannot_be_read(tmp_path):
    """/proc hidden by an empty tmpfs (in the child's namespace only): no mountinfo, no cleanup."""
    root = tmp_path / "logs"
    kept = _old(root / "a.log")
    argv = [sys.executable, str(HELPER), str(_config(tmp_path, root)), "/bin/bash", "real"]
    proc = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /proc && exec " + shlex.join(argv)],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    (real,) = json.loads(proc.stdout)
    assert real["status"] == "failed" and "mountinfo is not readable" in real["message"]
    assert kept.exists()
