"""Progress of a long restore: restic 0.14's ``restore`` prints nothing until it ends (no ``--json``
status before 0.16), so ragops watches the target dir grow against restic's restore-size.

- :func:`make_progress_line`: pure; ``restore 41%: 412 MB/1.0 GB, 38 MB/s, ETA 0m16s``;
- :func:`parse_du_bytes`: pure; the byte count of ``du -sb`` output;
- :func:`watch`: a context manager; a daemon thread runs ``du -sb DIR`` through the seam every
  ``every_s`` seconds (a read: it runs under ``--dry`` too, where the dir stays empty) and prints the
  line; the thread ends with the block. ``du`` walks only the directory entries (Chroma and Redis
  write few, large files), never file contents.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .. import output
from ..report import format_bytes
from ..seam import Target, quote


def make_progress_line(done: int, total: int, elapsed_s: float, what: str = "restore") -> str:
    """One line: percent of ``total``, bytes, rate and ETA (while the rate is known)."""
    pct = f"{min(100.0, 100.0 * done / total):.0f}%" if total > 0 else "?%"
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    line = f"{what} {pct}: {format_bytes(done)}/{format_bytes(total) if total > 0 else '?'}"
    if rate > 0:
        line += f", {format_bytes(int(rate))}/s"
        if total > done:
            eta = int((total - done) / rate)
            line += f", ETA {eta // 60}m{eta % 60:02d}s"
    return line


def parse_du_bytes(text: str) -> int | None:
    """The first field of ``du -sb`` output, or None."""
    first = (text or "").strip().split("\t", 1)[0].split(" ", 1)[0]
    return int(first) if first.isdigit() else None


def make_du_command(directory: str) -> str:
    return f"du -sb {quote(directory)} 2>/dev/null | cut -f1"


@contextmanager
def watch(target: Target, directory: str, total: int, *, every_s: float = 10.0, what: str = "restore") -> Iterator[None]:
    """Print a progress line every ``every_s`` seconds while the block runs (0: nothing)."""
    if every_s <= 0:
        yield
        return
    stop = threading.Event()
    t0 = time.monotonic()

    def loop() -> None:
        while not stop.wait(every_s):
            done = parse_du_bytes(target.run(make_du_command(directory)).stdout)
            if done is not None and not stop.is_set():
                output.info(target.name, make_progress_line(done, total, time.monotonic() - t0, what))

    thread = threading.Thread(target=loop, name=f"progress-{target.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
