"""Start the Chroma verify process before the restore, so ChromaDB's import overlaps restic.

Importing chromadb costs ~0.9 s of CPU, a third of a 50k-vector verification. The process is
started (``chroma_selfcheck.py serve GO_FILE`` on the combined script) as soon as the scratch dir
exists; once the manifest is read, ``run`` writes GO_FILE (atomically) with the verify arguments
and waits for the JSON answer. ``close`` tells an unused process to stop; it also stops by itself
when the scratch dir disappears, when its parent dies, or after ``timeout_s`` (0: never). If it
gave up before its order came, ``run`` returns None and the caller verifies the usual way.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ... import interrupts
from ...seam import Target
from .hooks import HostScripts, Layout, Scripts

GO_NAME = "chroma-go.json"  # the order file in the scratch dir the pre-started process waits for


class ChromaPrewarm:
    def __init__(self, target: Target, python: str, layout: Layout, timeout_s: float = 0.0,
                 scripts: Scripts | None = None) -> None:
        from .chroma import COMBINED, make_combined_script, run_json

        self.target, self.layout = target, layout
        self.go = f"{layout.root}/{GO_NAME}"
        self.future: Future[dict[str, Any]] | None = None
        self.used = False
        if make_combined_script() is None or target.dry:
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"chroma-{target.name}")
        self.future = pool.submit(run_json, scripts or HostScripts(target), COMBINED, ["serve", self.go, str(int(timeout_s))],
                                  python, "chroma verify", target.name)
        pool.shutdown(wait=False)

    @property
    def available(self) -> bool:
        return self.future is not None and not self.used

    def run(self, argv: list[str]) -> dict[str, Any] | None:
        """Hand the waiting process its arguments (``both DIR MANIFEST MIN_OVERLAP N``) and wait.
        None if it had given up before (then verify without it)."""
        assert self.future is not None and not self.used
        self.used = True
        if self.future.done():  # it gave up already
            return None
        self.target.put_text(json.dumps({"argv": argv}), self.go, mode="0600")
        doc = interrupts.result(self.future)
        return None if str(doc.get("error", "")).startswith("gave up") else doc

    def close(self, why: str = "not needed") -> None:
        """Stop the process if it never got its order; wait for it either way."""
        if self.future is None:
            return
        if not self.used and not self.future.done():
            self.used = True
            self.target.put_text(json.dumps({"abort": why}), self.go, mode="0600")
        try:
            self.future.result(timeout=60)
        except Exception:  # noqa: BLE001 - its outcome no longer matters; never mask the run's own error
            pass
