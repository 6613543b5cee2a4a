"""One finding of the health step (:class:`Check`), shared by the API, Redis, Chroma, container and
disk checks: its status (ok / degraded / failed / skipped), a one-line message and the figures
behind it (``--json`` and the report show them; metrics are drawn from them).

Check names are ``<group>`` or ``<group>_<part>`` or ``<group>:<subject>`` (``api_health``,
``redis``, ``container:chroma``, ``disk:/data``): the summary line groups them by ``<group>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..report import DEGRADED, FAILED, OK, SKIPPED

SEVERITY = {SKIPPED: -1, OK: 0, DEGRADED: 1, FAILED: 2}  # also the ragops_health_check_status gauge


@dataclass
class Check:
    name: str
    status: str = OK
    message: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    def worsen(self, status: str, reason: str) -> None:
        """Raise the status to ``status`` (never lower it) and add ``reason`` to the message."""
        if SEVERITY[status] > SEVERITY[self.status]:
            self.status = status
        self.message = f"{self.message}; {reason}" if self.message else reason


def worst(statuses: list[str]) -> str:
    """The most severe of ``statuses`` (ok for none)."""
    return max(statuses, key=lambda s: SEVERITY[s], default=OK)
