"""Pure comparisons of a restored snapshot with its manifest: every check has a name, pass/fail,
figures and one line of evidence (what the manifest says, what the restored copy has)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Check:
    check: str
    ok: bool
    evidence: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def compare_redis(record: dict[str, Any], probe: dict[str, Any]) -> list[Check]:
    """Per-db key counts and the key-sample digest of the restored dump against the manifest."""
    want = {str(k): int(v) for k, v in (record.get("db_keys") or {}).items()}
    got = {str(k): int(v) for k, v in (probe.get("db_keys") or {}).items()}
    diffs = [f"db{db}: manifest {want.get(db, 0)}, restored {got.get(db, 0)}"
             for db in sorted(set(want) | set(got), key=int) if want.get(db, 0) != got.get(db, 0)]
    counts = Check("redis: key counts", not diffs,
                   "; ".join(diffs) or f"{sum(got.values())} keys in {len(got)} db(s), as recorded",
                   {"manifest": want, "restored": got})
    out = [counts]
    if record.get("sample_digest"):
        same = probe.get("sample_digest") == record["sample_digest"]
        out.append(Check("redis: sample digest", same,
                         f"{probe.get('sampled', '?')} sampled key(s): manifest {str(record['sample_digest'])[:16]}, "
                         f"restored {str(probe.get('sample_digest'))[:16]}",
                         {"sample_size": record.get("sample_size"), "sampled": probe.get("sampled")}))
    return out


def convert_chroma_checks(doc: dict[str, Any]) -> list[Check]:
    """chroma_inspect's verify (or selfcheck) output as Checks, prefixed ``chroma:``."""
    checks = [Check(f"chroma: {c['check']}", bool(c["ok"]), str(c.get("evidence", ""))) for c in doc.get("checks", [])]
    if not checks or (doc.get("error") and doc.get("ok") is False and not any(not c.ok for c in checks)):
        checks.append(Check("chroma: opens", False, str(doc.get("error") or "no result from the Chroma check")))
    return checks


def compare_models(record: dict[str, Any], restored: list[dict[str, Any]]) -> list[Check]:
    """The embedding model recorded per collection (if any) is the restored collection's."""
    have = {c.get("name"): c for c in restored}
    out = []
    for col in record.get("collections", []):
        cur = have.get(col["name"])
        if cur is None or "error" in cur:
            continue
        out.append(Check(f"chroma: {col['name']}: embedding_model matches", cur.get("embedding_model") == col.get("embedding_model"),
                         f"manifest {col.get('embedding_model')}, dir {cur.get('embedding_model')}"))
    return out


def compare_compat(record: dict[str, Any], live: list[dict[str, Any]]) -> list[str]:
    """Differences that make the snapshot unusable for the live application: per collection present
    in both, dimension / metric / embedding model. Empty list: compatible."""
    live_by_name = {c["name"]: c for c in live}
    problems = []
    for col in record.get("collections", []):
        cur = live_by_name.get(col["name"])
        if cur is None:
            continue
        for key in ("dimension", "metric", "embedding_model"):
            snap, now = col.get(key), cur.get(key)
            if snap is not None and now is not None and snap != now:
                problems.append(f"collection {col['name']}: {key} is {snap} in the snapshot but {now} live")
    return problems


def summarize(checks: list[Check]) -> tuple[bool, str]:
    failed = [c for c in checks if not c.ok]
    if not failed:
        return True, f"all {len(checks)} checks passed"
    return False, f"{len(failed)} of {len(checks)} checks failed: " + "; ".join(f"{c.check}: {c.evidence}" for c in failed[:4])
