"""Restore-test guards (stdlib only, runs ON the host with this script on stdin).

Usage::

    python3 - tree ROOT [STRICT ...]        # walk ROOT with lstat (never following anything)
    python3 - leftovers BASE KEEP           # remove dead runs' restore-test-* dirs in BASE (not KEEP)

``tree``: a restored snapshot is untrusted input. Every entry below ROOT is lstat'ed (no symlink is
ever followed); symlinks, hard links (a regular file with st_nlink > 1), block/char devices, FIFOs,
sockets, and names that are not plain path components are reported. ROOT itself must be a real
directory. Below a STRICT dir (the staged dumps ragops opens) every symlink is refused; elsewhere
(in-place paths such as a Kubernetes ConfigMap's ``..data`` links) a symlink is allowed only if
its target is relative and, resolved lexically from the link's dir, stays inside ROOT: nothing
ragops opens follows it. Output: ``{"ok", "entries", "bytes", "problems": [...], "unsafe": N}``.

``leftovers``: under the host lock every other ``restore-test-*`` dir in BASE belongs to a dead run.
Its throwaway redis-server (pid from ``redis/redis.pid``) is SIGKILLed only if that process' cwd
or cmdline points into the dir; then the dir is removed (``rm -rf --one-file-system``: no symlink
is followed, no mount point entered). The last stdout line is always one JSON object with ``ok``.
"""

import json
import os
import re
import signal
import stat
import subprocess
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # shipped composed, json_result.py in front (ragops.remote.NEEDS); for linters only
    from ragops.remote.json_result import run_json_main

SCRATCH = re.compile(r"^restore-test-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
KINDS = ((stat.S_ISLNK, "symlink"), (stat.S_ISBLK, "block device"), (stat.S_ISCHR, "character device"),
         (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"))
MAX_LISTED = 20


def contained(root, path, target):
    """A relative symlink target that, resolved without touching the disk, stays inside root."""
    if os.path.isabs(target):
        return False
    resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
    return resolved.startswith(root.rstrip("/") + "/")


def run_tree(root, strict=()):
    root = os.path.normpath(root)
    strict = [os.path.normpath(d) for d in strict]
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        return {"ok": False, "problems": ["%s is not a real directory" % root], "unsafe": 1, "entries": 0, "bytes": 0}
    problems = []  # type: list
    unsafe, entries, size = 0, 0, 0
    stack, dev = [root], st.st_dev
    while stack:
        top = stack.pop()
        with os.scandir(top) as it:
            for entry in it:
                entries += 1
                path = os.path.join(top, entry.name)
                st = entry.stat(follow_symlinks=False)
                why = next((what for test, what in KINDS if test(st.st_mode)), None)
                if why == "symlink":
                    link = os.readlink(path)
                    below_strict = any(path == d or path.startswith(d + "/") or d.startswith(path + "/") for d in strict)
                    why = None if (not below_strict and contained(root, path, link)) else "symlink to %r" % link
                    if why is None:
                        continue  # allowed and never followed (not counted as a file)
                elif why is None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                    why = "hard link (%d links)" % st.st_nlink
                elif why is None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    why = "unknown file type %o" % stat.S_IFMT(st.st_mode)
                elif entry.name in (".", "..") or "/" in entry.name or "\n" in entry.name:
                    why = "name %r" % entry.name
                if why is not None:
                    unsafe += 1
                    if len(problems) < MAX_LISTED:
                        problems.append("%s: %s" % (json.dumps(path)[1:-1], why))
                elif stat.S_ISDIR(st.st_mode):
                    if st.st_dev != dev:
                        unsafe += 1
                        problems.append("%s: another filesystem is mounted here" % path)
                    else:
                        stack.append(path)
                else:
                    size += st.st_size
    return {"ok": not unsafe, "problems": problems, "unsafe": unsafe, "entries": entries, "bytes": size}


def read_pid(directory):
    try:
        with open(os.path.join(directory, "redis.pid"), encoding="ascii") as fh:
            return int(fh.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def is_alive(pid):
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def points_into(pid, directory):
    try:
        cwd = os.path.realpath("/proc/%d/cwd" % pid)
    except OSError:
        cwd = ""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            cmdline = fh.read().decode(errors="replace").split("\0")
    except OSError:
        cmdline = []
    inside = directory.rstrip("/") + "/"
    return (cwd + "/").startswith(inside) or any(a == directory or a.startswith(inside) for a in cmdline)


def run_leftovers(base, keep):
    removed, killed, problems = [], [], []
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        names = []
    for name in names:
        path = os.path.join(base, name)
        if not SCRATCH.match(name) or path == keep or not stat.S_ISDIR(os.lstat(path).st_mode):
            continue
        pid = read_pid(os.path.join(path, "redis"))
        if pid and is_alive(pid) and points_into(pid, path):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            for _ in range(250):
                if not is_alive(pid):
                    break
                time.sleep(0.02)
        res = subprocess.run(["rm", "-rf", "--one-file-system", "--", path], capture_output=True, text=True)
        if res.returncode == 0:
            removed.append(path)
        else:
            problems.append("%s: %s" % (path, res.stderr.strip()[-200:]))
    return {"ok": not problems, "removed": removed, "killed": killed, "problems": problems}


def main(argv):
    if argv[0] == "tree":
        return run_tree(os.path.abspath(argv[1]), [os.path.abspath(d) for d in argv[2:]])
    if argv[0] == "leftovers":
        return run_leftovers(os.path.abspath(argv[1]), os.path.abspath(argv[2]))
    return {"ok": False, "error": "unknown mode " + argv[0]}


if __name__ == "__main__":
    run_json_main(main)
