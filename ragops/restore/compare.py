"""Pure comparisons of a restored snapshot with its manifest: every check has a name, pass/fail,
figures and one line of evidence (what the manifest says, what the restored copy has).

The per-source comparisons live with their source (``ragops/backup/sources/<key>.py``)."""

from __future__ import annotations

from typing import Any

from ..backup.sources.hooks import Check

__all__ = ["Check", "compare_files", "summarize"]


def compare_files(expected: dict[str, dict[str, Any]], restored: dict[str, dict[str, Any]], prefix: str) -> Check:
    """Every staged file of the manifest, found below ``prefix`` (the restore dir) with the same sha256."""
    missing, wrong = [], []
    verified = 0
    for path, want in sorted(expected.items()):
        got = restored.get(prefix + path)
        if got is None:
            missing.append(path)
        elif got.get("sha256") != want.get("sha256"):
            wrong.append(f"{path} (manifest {str(want.get('sha256'))[:12]}, restored {str(got.get('sha256'))[:12]})")
        else:
            verified += int(got.get("bytes") or 0)
    ok = not missing and not wrong
    evidence = f"{len(expected) - len(missing) - len(wrong)} of {len(expected)} file(s) match, {verified} bytes"
    if missing:
        evidence += f"; missing: {', '.join(missing[:3])}"
    if wrong:
        evidence += f"; sha256 differs: {', '.join(wrong[:3])}"
    return Check("files: sha256", ok, evidence, {"files": len(expected), "missing": len(missing),
                                                  "mismatched": len(wrong), "verified_bytes": verified})


def summarize(checks: list[Check]) -> tuple[bool, str]:
    failed = [c for c in checks if not c.ok]
    if not failed:
        return True, f"all {len(checks)} checks passed"
    return False, f"{len(failed)} of {len(checks)} checks failed: " + "; ".join(f"{c.check}: {c.evidence}" for c in failed[:4])
