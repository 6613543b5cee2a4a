"""Filesystems under test for bench_scale, made and torn down by the bench.

`Workspace` owns one run root `/var/tmp/ragops-bench-scale-<pid>-<rand>/` and everything under it:
- `ext4`: a plain dir on /var/tmp's own filesystem (the root fs here: whatever `findmnt -T` says);
- `btrfs`: a sparse image, `losetup --find --show`, `mkfs.btrfs`, mounted with `commit=1,flushoncommit`
  (else statfs lags by up to 30 s); the Chroma data dir is a subvolume;
- `xfs`: the same with `mkfs.xfs -m reflink=1`;
- `tmpfs` (aux): restic repos, caches, configs and logs, so the filesystem under test only sees the
  live data, the staging dir and the restore scratch dirs.
`close()` (call it in `finally`) unmounts in reverse order, detaches the loop devices and removes the
run root; `drop(fs)` does the same for one filesystem early.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

BASE = Path("/var/tmp")
KINDS = ("ext4", "btrfs", "xfs", "ext4loop")  # ext4loop: an ext4 loop mount (no other writers on it)


def sh(*argv: str) -> str:
    res = subprocess.run(argv, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed (rc {res.returncode}): {res.stderr.strip()[-500:]}")
    return res.stdout.strip()


def fstype(path: Path) -> str:
    return sh("findmnt", "-n", "-o", "FSTYPE", "-T", str(path))


def sync_fs(path: Path) -> None:
    subprocess.run(["sync", "-f", str(path)], check=False)


def used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


@dataclass
class Fs:
    kind: str  # ext4 | btrfs | xfs (what was asked for)
    root: Path  # where the bench puts live dirs, staging, scratch
    fstype: str  # what the kernel says it is
    device: str | None = None  # loop device
    image: Path | None = None
    mounted: bool = False

    def make_data_dir(self, path: Path) -> None:
        """The Chroma data dir: a btrfs subvolume on btrfs (copy_mode snapshot needs one), else a dir."""
        if self.fstype == "btrfs":
            sh("btrfs", "subvolume", "create", str(path))
        else:
            path.mkdir(parents=True)


@dataclass
class Workspace:
    root: Path = field(default_factory=lambda: BASE / f"ragops-bench-scale-{os.getpid()}-{secrets.token_hex(3)}")
    mounts: list[Path] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(mode=0o700)

    def tmpfs(self, name: str, size_gb: float) -> Path:
        path = self.root / name
        path.mkdir()
        sh("mount", "-t", "tmpfs", "-o", f"size={max(1, int(size_gb * 1024))}m,mode=0700", "tmpfs", str(path))
        self.mounts.append(path)
        return path

    def make(self, kind: str, size_gb: float, tag: str) -> Fs:
        if kind == "ext4":
            path = self.root / f"ext4-{tag}"
            path.mkdir()
            return Fs(kind=kind, root=path, fstype=fstype(path))
        image = self.root / f"{kind}-{tag}.img"
        with open(image, "wb") as f:
            f.truncate(int(max(2.0, size_gb) * 1024**3))
        self.images.append(image)
        device = sh("losetup", "--find", "--show", str(image))
        self.loops.append(device)
        mkfs = {"btrfs": ["mkfs.btrfs", "-q", "-f"], "xfs": ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"],
                "ext4loop": ["mkfs.ext4", "-q", "-F"]}[kind]
        sh(*mkfs, device)
        mnt = self.root / f"{kind}-{tag}"
        mnt.mkdir()
        # btrfs' statfs counts data only once a transaction commits it: commit every second, with the
        # dirty data flushed, so the 50 ms disk samples lag by at most ~1 s (measured: 100 MB shows in 0.5 s)
        opts = ["-o", "commit=1,flushoncommit"] if kind == "btrfs" else []
        sh("mount", *opts, device, str(mnt))
        self.mounts.append(mnt)
        return Fs(kind=kind, root=mnt, fstype=fstype(mnt), device=device, image=image, mounted=True)

    def drop(self, fs: Fs) -> None:
        if fs.mounted:
            self._umount(fs.root)
            fs.mounted = False
        if fs.device:
            self._detach(fs.device)
        if fs.image:
            fs.image.unlink(missing_ok=True)
            with contextlib.suppress(ValueError):
                self.images.remove(fs.image)
        shutil.rmtree(fs.root, ignore_errors=True)

    def _umount(self, path: Path) -> None:
        res = subprocess.run(["umount", str(path)], capture_output=True, text=True)
        if res.returncode:  # busy: a leftover process; detach lazily so nothing stays mounted
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        with contextlib.suppress(ValueError):
            self.mounts.remove(path)

    def _detach(self, device: str) -> None:
        subprocess.run(["losetup", "-d", device], capture_output=True)
        with contextlib.suppress(ValueError):
            self.loops.remove(device)

    def close(self) -> None:
        for path in reversed(list(self.mounts)):
            self._umount(path)
        for device in reversed(list(self.loops)):
            self._detach(device)
        for image in list(self.images):
            image.unlink(missing_ok=True)
        # everything below is ours and unmounted now; --one-file-system guards against a mount left behind
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.root)], capture_output=True)
