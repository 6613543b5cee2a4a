"""Real filesystems for the copy-strategy tests: btrfs and XFS on loop devices (``mkfs`` on a file).

``LoopFilesystem.make(kind, base, size_mb)`` creates the image file, formats it (``mkfs.btrfs -q``;
``mkfs.xfs -q -m reflink=1``), mounts it with ``mount -o loop`` at ``base/mnt`` and ``stop()``
unmounts it (``umount``; the loop device goes with it: ``mount -o loop`` sets autoclear) and removes
the image. Needs root and the Debian packages btrfs-progs and xfsprogs (scripts/apt-packages.txt).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MKFS = {"btrfs": ["mkfs.btrfs", "-q"], "xfs": ["mkfs.xfs", "-q", "-m", "reflink=1"]}


def missing_tools(kind: str) -> list[str]:
    need = [MKFS[kind][0], "mount", "umount"] + (["btrfs"] if kind == "btrfs" else [])
    return [t for t in need if shutil.which(t) is None]


@dataclass
class LoopFilesystem:
    kind: str
    image: Path
    mount: Path

    @classmethod
    def make(cls, kind: str, base: Path, size_mb: int = 512) -> LoopFilesystem:
        image, mount = base / f"{kind}.img", base / "mnt"
        mount.mkdir(parents=True, exist_ok=True)
        with image.open("wb") as fh:
            fh.truncate(size_mb << 20)
        subprocess.run([*MKFS[kind], str(image)], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True, capture_output=True)
        return cls(kind, image, mount)

    def subvolume(self, name: str) -> Path:
        """A btrfs subvolume below the mount (what the snapshot strategy needs as its data dir)."""
        path = self.mount / name
        subprocess.run(["btrfs", "subvolume", "create", str(path)], check=True, capture_output=True)
        return path

    def is_subvolume(self, path: Path) -> bool:
        return path.is_dir() and path.stat().st_ino == 256

    def used_bytes(self) -> int:
        import os

        st = os.statvfs(self.mount)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def stop(self) -> None:
        subprocess.run(["umount", str(self.mount)], check=False, capture_output=True)
        if self.mount.is_mount():
            subprocess.run(["umount", "-l", str(self.mount)], check=False, capture_output=True)
        self.image.unlink(missing_ok=True)
