"""k8s/render.yaml: what `invoke k8s.render` needs besides the backup policies.

Same conventions as ragops.yaml: unknown fields are rejected, every field has a description, and
every problem is reported at once as ``FILE: dotted.field: message``. No secret values live here:
only the NAMES of the Kubernetes Secrets the CronJobs reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from ..config import Model, RagopsConfig, make_error_lines, read_yaml
from ..errors import ConfigError

_DNS = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Resources(Model):
    cpu_request: str = Field("50m", description="CPU request of every ragops container.")
    memory_request: str = Field("128Mi", description="Memory request of every ragops container.")
    cpu_limit: str = Field("500m", description="CPU limit of every ragops container.")
    memory_limit: str = Field("512Mi", description="Memory limit of every ragops container.")


class Overlay(Model):
    image_tag: str = Field(description="Tag of the ragops image in this overlay (kustomize `images:`).")
    resources: Resources | None = Field(None, description="Container resources in this overlay; unset: the base's.")
    suspend: bool = Field(False, description="Render every CronJob of this overlay suspended (e.g. a dev cluster that must not run backups).")


class SecretRefs(Model):
    restic: str = Field("ragops-restic", description="Secret holding the restic repository password under the key `password`.")
    s3: str = Field("ragops-s3", description="Secret holding S3 keys under `access-key-id` and `secret-access-key`.")


class DataClaim(Model):
    claim: str = Field(description="PersistentVolumeClaim name in the RAG namespace.")
    mount_path: str = Field(description="Where the backup and restore-test pods see it.")
    read_only: bool = Field(True, description="Mount read-only (backups only read the data).")
    source: Literal["chroma", "redis"] | None = Field(None, description="Which backup source lives on this claim: its data_dir in the policies the pods read becomes mount_path (a server reports its OWN path, e.g. Redis' CONFIG GET dir `/data`, which the backup pod does not have). A policy's explicit data_dir wins.")
    colocate_with: dict[str, str] | None = Field(None, description="Labels of the pod that mounts this ReadWriteOnce claim read-write (e.g. `{app.kubernetes.io/name: redis}`): the backup and restore-test pods get a required podAffinity to it (same node), since an RWO volume attaches to one node only. Unset: no affinity (RWX volumes, single-node clusters).")


class RenderSettings(Model):
    image: str = Field("ragops", description="Image name the CronJobs run (kustomize overlays set registry/tag via `images:`).")
    namespace: str = Field("rag-engine", pattern=_DNS, description="Namespace of the RAG system; the ragops CronJobs run here so they can mount its volumes.")
    velero_namespace: str = Field("velero", pattern=_DNS, description="Namespace of the Velero server (its Schedules live there).")
    service_account: str = Field("ragops", pattern=_DNS, description="ServiceAccount the CronJobs run as.")
    cleanup_schedule: str = Field("0 2 * * 0", description="Cleanup CronJob schedule (the maintenance guide's weekly 02:00 default).")
    starting_deadline_s: int = Field(600, ge=10, description="CronJob startingDeadlineSeconds: a run missed by more than this is skipped.")
    backoff_limit: int = Field(1, ge=0, description="Job backoffLimit: retries of a failed run.")
    active_deadline_s: int = Field(7200, ge=60, description="Job activeDeadlineSeconds: a run taking longer is killed.")
    successful_history: int = Field(3, ge=0, description="CronJob successfulJobsHistoryLimit.")
    failed_history: int = Field(3, ge=0, description="CronJob failedJobsHistoryLimit.")
    run_as_user: int = Field(10001, ge=1, description="Non-root UID of the ragops containers (the Dockerfile's user).")
    logs_claim: str = Field("rag-engine-logs-pvc", description="PVC holding the RAG logs; mounted at log_dir for cleanup.")
    log_dir: str = Field("/app/logs", description="Mount path of the logs volume (the guide's /app/logs).")
    data: list[DataClaim] = Field(default_factory=list, description="Data volumes the backup and restore-test CronJobs mount (Chroma, Redis).")
    velero_ttl: str = Field("720h0m0s", description="Velero Schedule template ttl (how long Velero keeps each backup).")
    secrets: SecretRefs = Field(default_factory=SecretRefs, description="Names of the Secrets referenced (never their values).")
    resources: Resources = Field(default_factory=Resources, description="Container resources in the base.")
    velero_drill: bool = Field(False, description="Also render the scheduled Velero restore drill: per backup policy with restore tests enabled a CronJob `ragops-velero-restore-test[-<policy>]` running `invoke velero.restore-test --policy <policy>` at the policy's restore_test.drill.cadence (else restore_test.cadence), as its own ServiceAccount `<service_account>-velero-drill` with least RBAC: a ClusterRole (get/delete namespaces; scratch-namespace reads, Jobs and the service proxy, in every namespace: RBAC cannot name namespaces that do not exist yet) and a Role in velero_namespace (list Backups, create/get Restores). The image must contain kubectl. false: none of it is rendered.")
    overlays: dict[str, Overlay] = Field(default_factory=dict, description="kustomize overlays rendered under k8s/overlays/<name>.")
    config: dict[str, Any] = Field(default_factory=dict, description="The ragops.yaml the CronJobs use (ConfigMap ragops-config); validated against the config schema.")

    @field_validator("cleanup_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} must have 5 cron fields")
        return value


def load_render_settings(path: str | Path) -> RenderSettings:
    """Parse and validate k8s/render.yaml, including the embedded ragops config."""
    source = str(path)
    if not Path(path).is_file():
        raise ConfigError(f"{source}: render settings not found (k8s.render needs it)")
    raw = read_yaml(source) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: (top level): must be a mapping of render settings")
    try:
        settings = RenderSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(make_error_lines(source, exc, RenderSettings)) from None
    try:
        RagopsConfig.model_validate(settings.config)
    except ValidationError as exc:
        raise ConfigError(make_error_lines(source, exc, RagopsConfig, ("config",))) from None
    return settings
