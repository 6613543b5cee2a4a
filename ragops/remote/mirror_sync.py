"""Update a mirror of a directory in place: only changed files are rewritten (stdlib only, ON the host).

Usage::

    python3 - SRC DST MODE [--sqlite-online NAME] [--dry]

MODE ``copy``: a changed file (size or mtime differs) is rewritten IN PLACE block by block (1 MiB):
only differing blocks are written, the inode stays, the file is truncated to the source's size, so
the extra disk is what grew. MODE ``reflink``: a changed file is cloned (FICLONE ioctl, btrfs/XFS)
to a temp name and renamed over: near-zero extra disk; fails with ``reflink unsupported`` where the
filesystem cannot. MODE ``auto``: reflink, else copy (the first failure decides, recorded).
Unchanged files (same size and mtime) are not opened: they keep their inode, mtime and ctime, so
restic's change detection skips them. Every copied file gets the source's mtime and mode. Entries
of the mirror that are gone from SRC are removed. Symlinks, devices, FIFOs and sockets in SRC are
never followed or copied (reported). ``--sqlite-online NAME``: the file NAME directly below SRC is
copied FIRST with sqlite's online backup API (a consistent copy while a writer runs), the rest after.

The last stdout line is one JSON object: ``ok``, ``files``, ``changed``, ``bytes_written``,
``bytes_total``, ``removed``, ``skipped`` (entries not copied), ``mode`` (what was used), ``seconds``.
"""

import errno
import fcntl
import os
import shutil
import sqlite3
import stat
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # shipped composed, json_result.py in front (ragops.remote.NEEDS); for linters only
    from ragops.remote.json_result import run_json_main

FICLONE = 0x40049409
BLOCK = 1 << 20


def clone(src, dst):
    """Reflink src to a temp name beside dst, then rename over dst."""
    tmp = dst + ".ragops-tmp"
    with open(src, "rb") as fin:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.ioctl(fd, FICLONE, fin.fileno())
        except OSError:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
    os.replace(tmp, dst)
    return os.path.getsize(dst)


def copy_in_place(src, dst):
    """Rewrite only the blocks of dst that differ from src; returns the bytes written."""
    written = 0
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
    fd = os.open(dst, flags, 0o600)
    with open(src, "rb") as fin, os.fdopen(fd, "r+b") as fout:
        offset = 0
        while True:
            block = fin.read(BLOCK)
            if not block:
                break
            old = fout.read(len(block))
            if old != block:
                fout.seek(offset)
                fout.write(block)
                written += len(block)
            offset += len(block)
            fout.seek(offset)
        fout.truncate(offset)
    return written


def sqlite_online(src, dst):
    tmp = dst + ".ragops-tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    source = sqlite3.connect("file:" + src + "?mode=ro", uri=True, timeout=60)
    target = sqlite3.connect(tmp)
    try:
        source.backup(target)
    except BaseException:
        target.close()
        os.unlink(tmp)  # a failed copy (e.g. "database or disk is full") leaves nothing behind
        raise
    finally:
        target.close()
        source.close()
    os.replace(tmp, dst)
    return os.path.getsize(dst)


class Sync:
    def __init__(self, mode, dry):
        self.mode, self.dry = mode, dry
        self.used = "reflink" if mode in ("reflink", "auto") else "copy"
        self.files = self.changed = self.written = self.total = self.removed = 0
        self.skipped = []

    def copy_file(self, src, dst, st):
        self.files += 1
        self.total += st.st_size
        try:
            have = os.lstat(dst)
        except FileNotFoundError:
            have = None
        if have is not None and stat.S_ISREG(have.st_mode) and have.st_size == st.st_size \
                and have.st_mtime_ns == st.st_mtime_ns:
            return
        self.changed += 1
        if self.dry:
            return
        if have is not None and not stat.S_ISREG(have.st_mode):
            remove(dst)
        if self.used == "reflink":
            try:
                self.written += clone(src, dst)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY):
                    raise
                if self.mode == "reflink":
                    raise OSError(exc.errno, "reflink unsupported for %s: %s" % (dst, exc.strerror)) from None
                self.used = "copy"
        if self.used == "copy":
            self.written += copy_in_place(src, dst)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def sync_dir(self, src, dst, skip=()):
        if not self.dry:
            os.makedirs(dst, mode=0o700, exist_ok=True)
        wanted = set()
        for entry in sorted(os.scandir(src), key=lambda e: e.name):
            if entry.name in skip:
                wanted.add(entry.name)
                continue
            st = entry.stat(follow_symlinks=False)
            target = os.path.join(dst, entry.name)
            if stat.S_ISDIR(st.st_mode):
                wanted.add(entry.name)
                if os.path.lexists(target) and not os.path.isdir(target) or os.path.islink(target):
                    self.dry or remove(target)
                self.sync_dir(entry.path, target)
            elif stat.S_ISREG(st.st_mode):
                wanted.add(entry.name)
                self.copy_file(entry.path, target, st)
            else:
                self.skipped.append(entry.path)
        if os.path.isdir(dst):
            for entry in os.scandir(dst):
                if entry.name not in wanted and not entry.name.endswith(".ragops-tmp"):
                    self.removed += 1
                    self.dry or remove(entry.path)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def main(argv):
    src, dst, mode = argv[0], argv[1], argv[2]
    dry = "--dry" in argv
    online = argv[argv.index("--sqlite-online") + 1] if "--sqlite-online" in argv else None
    if mode not in ("copy", "reflink", "auto"):
        return {"ok": False, "error": "unknown mode " + mode}
    if os.path.islink(src) or not os.path.isdir(src):
        return {"ok": False, "error": "source is not a directory: " + src}
    if os.path.islink(dst):
        return {"ok": False, "error": "mirror is a symlink: " + dst}
    t0 = time.monotonic()
    sync = Sync(mode, dry)
    skip = ()  # type: tuple[str, ...]
    if online:
        if not dry:
            os.makedirs(dst, mode=0o700, exist_ok=True)
            sync.written += sqlite_online(os.path.join(src, online), os.path.join(dst, online))
        sync.files += 1
        sync.changed += 1
        skip = (online, online + "-journal", online + "-wal", online + "-shm")
    sync.sync_dir(src, dst, skip)
    return {"ok": True, "files": sync.files, "changed": sync.changed, "bytes_written": sync.written,
            "bytes_total": sync.total, "removed": sync.removed, "skipped": sync.skipped[:20], "mode": sync.used,
            "seconds": round(time.monotonic() - t0, 3)}


if __name__ == "__main__":
    run_json_main(main)
