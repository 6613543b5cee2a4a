"""Pure comparison of the drill's answers with live's, and the drill's RTO.

Each query is asked of the live API and of the drill API. An answer matches when both HTTP statuses
are equal and the drill's top-k ``ids`` hold at least ``min_overlap`` of the live answer's ids (1.0:
the same set). When answers differ, the store's state (``state_path``/``state_field``: document
counts per collection) of both APIs tells why:

- equal state, or a drill state unlike what the manifest recorded (per-collection counts: an
  empty or partial store): **damage** (check ``drill: answers match live`` fails);
- the drill holds what the snapshot recorded, live's state differs: live was written after the
  snapshot: **drift** (check ``drill: live drift`` fails): the snapshot may be sound, but it no
  longer answers like production.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..backup.sources.hooks import Check

PHASES = ("restore", "volumes", "start", "healthy", "first_answer", "all_answers")


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no HTTP answer
    ids: tuple[str, ...] | None  # the JSON body's `ids`; None when absent
    error: str = ""
    cached: bool | None = None
    seconds: float = 0.0
    distances: tuple[float, ...] | None = None  # per id, when the body's `results` carry them

    def distance_of(self) -> dict[str, float]:
        return dict(zip(self.ids or (), self.distances or (), strict=False)) if self.distances else {}

    def describe(self) -> str:
        if not self.status:
            return f"no answer ({self.error[:80]})"
        ids = "no ids" if self.ids is None else "[" + ", ".join(self.ids[:5]) + (", ..." if len(self.ids) > 5 else "") + "]"
        edge = f" (k-th distance {self.distances[-1]:.4f})" if self.distances else ""
        return f"HTTP {self.status} {ids}{edge}" + (" (cached)" if self.cached else "")


def parse_answer(status: int, body: str, error: str = "", seconds: float = 0.0) -> Answer:
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    ids = data.get("ids") if isinstance(data, dict) else None
    ok_ids = tuple(str(i) for i in ids) if isinstance(ids, list) else None
    cached = data.get("cached") if isinstance(data, dict) and isinstance(data.get("cached"), bool) else None
    results = data.get("results") if isinstance(data, dict) else None
    distances = None
    if ok_ids is not None and isinstance(results, list) and len(results) == len(ok_ids):
        try:
            distances = tuple(float(r["distance"]) for r in results)
        except (TypeError, KeyError, ValueError):
            distances = None
    return Answer(status, ok_ids, error, cached, round(seconds, 3), distances)


def parse_state(body: str, state_field: str) -> Any:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get(state_field, data) if isinstance(data, dict) else data


def overlap(drill: Answer, live: Answer, tie: float = 1e-6) -> float:
    """Share of the live top-k ids in the drill's. Ids tied at the live answer's last distance are
    interchangeable (which of equally distant documents makes the cut is arbitrary): a drill id at that
    distance counts for a missing live id at it."""
    if live.ids is None or drill.ids is None:
        return 1.0 if live.ids is None and drill.ids is None else 0.0
    if not live.ids:
        return 1.0 if not drill.ids else 0.0
    common = set(drill.ids) & set(live.ids)
    n = len(common)
    mine, theirs = drill.distance_of(), live.distance_of()
    if mine and theirs:
        edge = max(theirs.values())
        extra = [i for i in drill.ids if i not in common and abs(mine[i] - edge) <= tie]
        missing = [i for i in live.ids if i not in common and abs(theirs[i] - edge) <= tie]
        n += min(len(extra), len(missing))
    return n / len(set(live.ids))


def matches(drill: Answer, live: Answer, min_overlap: float) -> bool:
    return bool(drill.status) and drill.status == live.status and overlap(drill, live) >= min_overlap


def make_reference_check(paths: list[str], live: list[Answer], expected: list[int], where: str) -> Check | None:
    """A failed ``drill: setup`` when a live answer lacks its query's expected status (None: all good).
    Two APIs failing alike "agree": that is no comparison, so the live answers must be a reference."""
    broken = [(p, a, want) for p, a, want in zip(paths, live, expected, strict=True) if a.status != want]
    if not broken:
        return None
    path, answer, want = broken[0]
    return Check("drill: setup", False, f"live {where} answered {path} with {answer.describe()} (expected HTTP {want})"
                 f"{f' and {len(broken) - 1} more' if len(broken) > 1 else ''}: no reference to compare the restored "
                 "answers with")


def holds_snapshot(drill_state: Any, snapshot_state: dict[str, int] | None) -> bool | None:
    """Does the drill serve what the snapshot recorded (the manifest's per-collection counts)? None:
    cannot tell (no counts recorded, or the state is not a {collection: count} mapping)."""
    if not snapshot_state or not isinstance(drill_state, dict) or \
            not all(isinstance(v, int) and not isinstance(v, bool) for v in drill_state.values()):
        return None
    return drill_state == snapshot_state


def make_comparison(paths: list[str], drill: list[Answer], live: list[Answer], min_overlap: float,
                    drill_state: Any, live_state: Any, snapshot_state: dict[str, int] | None = None,
                    questions: str = "queries") -> Check:
    """One check for all queries (or probes: ``questions``): matched, damage or drift (see the module doc).
    A drill whose state differs from what the snapshot recorded (an empty or partial store) is damage, never drift."""
    total = len(paths)
    bad = [(p, d, lv) for p, d, lv in zip(paths, drill, live, strict=True) if not matches(d, lv, min_overlap)]
    asked = "query answer(s)" if questions == "queries" else "probe answer(s) (the manifest's Chroma probes by vector)"
    figures = {"answers_matched": total - len(bad), "answers_total": total, "min_overlap": min_overlap, "questions": questions,
               "overlaps": [round(overlap(d, lv), 3) for d, lv in zip(drill, live, strict=True)]}
    holds = holds_snapshot(drill_state, snapshot_state)
    drifted = drill_state is not None and live_state is not None and drill_state != live_state and holds is not False
    if not bad:
        note = "; live changed after the snapshot but answers agree" if drifted else ""
        return Check("drill: answers match live", True,
                     f"{total} of {total} {asked} match live (min overlap {min_overlap:g}){note}", figures)
    detail = "; ".join(f"{p}: drill {d.describe()}, live {lv.describe()} (overlap {overlap(d, lv):.2f})"
                       for p, d, lv in bad[:3])
    if drifted:
        return Check("drill: live drift", False,
                     f"{len(bad)} of {total} {asked} differ because live changed after the snapshot (state "
                     f"{_short(drill_state)} in the snapshot, {_short(live_state)} live): {detail}",
                     {**figures, "drift": True})
    why = (f"the drill serves {_short(drill_state)} but the snapshot recorded {_short(snapshot_state)}"
           if holds is False else f"the store's state is the same ({_short(live_state)})")
    return Check("drill: answers match live", False,
                 f"{len(bad)} of {total} {asked} differ while {why}: the snapshot answers unlike production: {detail}",
                 {**figures, "damage": True})


def _short(value: Any) -> str:
    return json.dumps(value, sort_keys=True)[:160]


def first_match_at(drill: list[Answer], live: list[Answer], min_overlap: float) -> float | None:
    """Seconds after the first query was sent until the first matching drill answer arrived."""
    elapsed = 0.0
    for d, lv in zip(drill, live, strict=True):
        elapsed += d.seconds
        if matches(d, lv, min_overlap):
            return round(elapsed, 3)
    return None


def make_rto(phases: dict[str, float]) -> float | None:
    """From the start of the restore to the first correct answer (None: no correct answer)."""
    if "first_answer" not in phases:
        return None
    return round(sum(phases[p] for p in PHASES[:5] if p in phases), 3)


def make_rto_check(phases: dict[str, float], budget: float | None) -> Check | None:
    rto = make_rto(phases)
    if rto is None or not budget:
        return None
    shown = ", ".join(f"{k} {v:.1f}s" for k, v in phases.items())
    return Check("drill: rto within budget", rto <= budget, f"RTO to the first correct answer {rto:.1f}s, budget "
                 f"{budget:.0f}s ({shown})", {"rto_s": rto})
