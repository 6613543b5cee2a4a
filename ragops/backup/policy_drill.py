"""``restore_test.drill`` of a backup policy: how `restore-test --drill` brings the restored data up as
a throwaway Compose project and compares its answers with the live API's (docs/drill.md).

The drill starts the live project's own services (``docker compose config`` of the live project, its
images pinned by id) on fresh volumes and new loopback ports. Services with ``network_mode: host``
listen on ports their environment names: ``services.<role>.port_env`` says which variable carries a
role's port, ``url_env`` which variables of the other services carry its URL (their port is
rewritten to the drill's). The defaults match the seed stack (``CHROMA_PORT``/``CHROMA_URL``,
``REDIS_PORT``/``REDIS_URL``, ``RAG_API_PORT``). Published ``ports:`` get new free loopback ports.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from ..config import CannedQuery, Model
from .policy_sources import check_cron

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class DrillRole(Model):
    """Where one role's port and URL live in the services' environment (network_mode: host)."""

    port_env: str | None = Field(None, pattern=_ENV_NAME, description="Environment variable of the role's own service that holds the port it listens on (rewritten to a free loopback port in the drill); null: the service has no port setting (bridge networks: only its published ports change).")
    url_env: list[str] = Field(default_factory=list, description="Environment variables of the OTHER services holding this role's URL (e.g. CHROMA_URL=http://127.0.0.1:8000): their port is rewritten to the role's drill port.")

    @field_validator("url_env")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        import re

        for name in value:
            if not re.match(_ENV_NAME, name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return value


class DrillRoles(Model):
    """The port/URL variables per role (the roles are found as for the data tasks: docker.roles)."""

    chroma: DrillRole = Field(default_factory=lambda: DrillRole(port_env="CHROMA_PORT", url_env=["CHROMA_URL"]), description="The Chroma server's port variable and the URL variables pointing at it.")
    redis: DrillRole = Field(default_factory=lambda: DrillRole(port_env="REDIS_PORT", url_env=["REDIS_URL"]), description="Redis' port variable and the URL variables pointing at it.")
    api: DrillRole = Field(default_factory=lambda: DrillRole(port_env="RAG_API_PORT"), description="The RAG API's port variable (the drill's queries go to this port on 127.0.0.1).")


class DrillSettings(Model):
    """The restore drill (`invoke restore-test --drill`): a throwaway Compose project on the restored data."""

    services: DrillRoles = Field(default_factory=DrillRoles, description="Which environment variables carry each role's port and URL (services with network_mode: host).")
    environment: dict[str, dict[str, str]] = Field(default_factory=dict, description="Extra environment per Compose service for the drill only (service -> {VAR: value}), e.g. to switch off outgoing webhooks or paid model keys in a drill.")
    queries: list[CannedQuery] = Field(default_factory=list, description="Queries asked of the drill API and the live API (api.url); empty: the host's docker.release.queries. Their JSON answers' `ids` (top-k) and status are compared. None configured: the manifest's Chroma probes are asked by their stored vectors of the drill's and the live Chroma server (chroma.url, else the chroma service's port).")
    min_overlap: float = Field(1.0, ge=0.0, le=1.0, description="Minimum share of the live answer's top-k ids the drill's answer must contain. 1.0 (exact) fits an idle store; a store written while the snapshot ages needs less (new documents enter the live top-k).")
    health_timeout_s: float = Field(180.0, gt=0, description="How long every drill service may take to become healthy (HEALTHCHECK), seconds.")
    state_path: str = Field("/status", pattern=r"^/", description="API path whose JSON describes the store (document counts), asked of both APIs: when it differs, answers that differ are reported as drift (live changed after the snapshot), not damage.")
    history_file: str = Field("/var/lib/ragops/drill-history.jsonl", pattern=r"^/", description="JSON-lines record of every drill's outcome on the host (snapshot id, time, passed, RTO, answers matched; the last 500 kept), shown by `backup.snapshots` (column drill). Not a restic tag: `restic tag` rewrites the snapshot under a new id.")
    cadence: str | None = Field(None, description="When the scheduled drill (`restore-test --drill`, which includes the data checks) runs: a 5-field cron expression (scripts/install-schedule.sh --task drill --policy FILE); null: no scheduled drill. Schedule it instead of, not beside, restore_test.cadence's plain restore test at the same time.")
    state_field: str = Field("documents", description="Field of the state_path answer that is compared (the whole answer when absent).")

    @field_validator("cadence")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(cls, value)
