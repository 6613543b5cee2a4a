"""Free-space preflight: refuse a write that would leave a filesystem below its free-space floor.

``run_size_of(target, paths)`` is what a copy of these paths needs, in bytes: per path the LARGER
of its allocated size (``du -s -B1``) and its apparent size (``du -s -B1 --apparent-size``). That
is conservative on purpose: ``cp -a`` keeps sparse files sparse and ``cp --reflink=auto`` on
btrfs/XFS shares extents (a copy costing ~0), but sqlite's online backup writes every page and a
copy to another filesystem gets no reflink, so the full size is counted. Missing paths count 0.

``run_space_preflight(target, path, need_bytes, what=...)`` reads ``df -P -B1`` of the nearest
existing ancestor of ``path`` and raises :class:`~ragops.errors.SpaceError` when the space left
after writing ``need_bytes`` would be below the floor: ``max(disk.min_free_percent,
100 - disk.fail_percent)`` percent of the filesystem's size. Both are reads (they run under --dry).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SpaceError, StepError
from .report import format_bytes
from .seam import Target, quote

SIZE_SCRIPT = (
    'for p in "$@"; do if [ -e "$p" ] || [ -L "$p" ]; then '
    'a=$(du -s -B1 --apparent-size -- "$p" 2>/dev/null | cut -f1); b=$(du -s -B1 -- "$p" 2>/dev/null | cut -f1); '
    'echo "${a:-x} ${b:-x}"; else echo "0 0"; fi; done'
)


@dataclass(frozen=True)
class FsSpace:
    """One filesystem as ``df -P -B1`` reports it (bytes)."""

    device: str
    size: int
    used: int
    avail: int
    mount: str


def make_size_command(paths: list[str]) -> str:
    """One line ``<apparent> <allocated>`` per path, in order (``0 0`` for a missing path)."""
    return f"sh -c {quote(SIZE_SCRIPT)} ragops-size " + " ".join(quote(p) for p in paths)


def parse_sizes(stdout: str, paths: list[str]) -> list[int]:
    lines = [line.split() for line in stdout.strip().splitlines() if line.strip()]
    if len(lines) != len(paths) or any(len(f) != 2 or not all(x.isdigit() for x in f) for f in lines):
        raise StepError(f"cannot measure {', '.join(paths)} with du (output: {stdout.strip()[-200:] or 'none'})")
    return [max(int(a), int(b)) for a, b in lines]


def run_size_of(target: Target, paths: list[str]) -> int:
    """Bytes a copy of these paths needs (see the module doc: conservative for sparse files and reflinks)."""
    if not paths:
        return 0
    res = target.run(make_size_command(paths))
    try:
        return sum(parse_sizes(res.stdout, paths))
    except StepError as exc:
        raise StepError(f"{target.name}: {exc}") from None


def make_df_command(path: str) -> str:
    """``df -P -B1`` of the nearest existing ancestor of ``path`` (the directory may not exist yet)."""
    return (f"p={quote(path)}; while [ ! -e \"$p\" ] && [ \"$p\" != / ]; do p=$(dirname -- \"$p\"); done; "
            "LC_ALL=C df -P -B1 -- \"$p\" | tail -n 1")


def parse_df(stdout: str) -> FsSpace:
    """``Filesystem 1-blocks Used Available Capacity Mounted-on``; the mount point may hold spaces."""
    fields = stdout.strip().splitlines()[-1].split() if stdout.strip() else []
    if len(fields) < 6 or not all(f.isdigit() for f in fields[1:4]):
        raise StepError(f"cannot parse df output {stdout.strip()[-200:]!r}")
    return FsSpace(device=fields[0], size=int(fields[1]), used=int(fields[2]), avail=int(fields[3]),
                   mount=" ".join(fields[5:]))


def make_floor(size: int, min_free_percent: int, fail_percent: int) -> int:
    """Bytes that must stay free: the larger of min_free_percent and (100 - fail_percent) of the size."""
    return (size * max(min_free_percent, 100 - fail_percent) + 99) // 100


def make_refusal(fs: FsSpace, need: int, floor: int, *, what: str, min_free_percent: int, fail_percent: int) -> str | None:
    """The refusal message, or None when ``need`` bytes fit above the floor."""
    left = fs.avail - need
    if left >= floor:
        return None
    after = f"it would leave {format_bytes(left)}" if left >= 0 else f"it does not even fit ({format_bytes(-left)} short)"
    return (f"{what} needs {format_bytes(need)} on {fs.mount} ({fs.device}), which has {format_bytes(fs.avail)} free "
            f"of {format_bytes(fs.size)}; at least {format_bytes(floor)} must stay free (disk.min_free_percent "
            f"{min_free_percent}%, disk.fail_percent {fail_percent}%) and {after}: refused before writing anything")


def run_space_preflight(target: Target, path: str, need_bytes: int, *, what: str) -> None:
    """Raise SpaceError if writing ``need_bytes`` under ``path`` would cross the host's free-space floor."""
    res = target.run(make_df_command(path))
    if not res.ok:
        raise StepError(f"{target.name}: cannot read the free space of {path} (exit {res.exited}): {res.stderr.strip()[-300:]}")
    try:
        fs = parse_df(res.stdout)
    except StepError as exc:
        raise StepError(f"{target.name}: {path}: {exc}") from None
    disk = target.settings.disk
    floor = make_floor(fs.size, disk.min_free_percent, disk.fail_percent)
    text = make_refusal(fs, need_bytes, floor, what=what, min_free_percent=disk.min_free_percent,
                        fail_percent=disk.fail_percent)
    if text is not None:
        raise SpaceError(f"{target.name}: {text}")
