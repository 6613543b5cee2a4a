"""The node side of the test cluster: a REAL kubelet node, and a labelled stand-in for the rest.

``start_node`` (real)
    A private dockerd (tests/fixtures/docker_engine.py) and Kubernetes 1.20's kubelet against it through
    dockershim, built by scripts/setup.d/50-kube.sh with the two patches these VMs need (pod sandbox
    and Guaranteed-QoS ``oom_score_adj`` 0: CAP_SYS_RESOURCE is dropped here) and one that keeps it
    from rewriting the machine's sysctls. It registers the Node ``127.0.0.1`` (the name gives it
    InternalIP 127.0.0.1, which ``kubectl logs`` needs; ``--node-ip`` refuses loopback) and waits for
    it to be Ready. Pods need ``hostNetwork: true`` (no docker bridge, no CNI here). Test images
    (busybox based, ``load_images``) are imported into that engine; nothing is pulled.

    The node is tainted ``ragops.test/real-kubelet=true:NoSchedule``: pods reach it only from a
    namespace pinned with ``pin_namespace`` (the PodNodeSelector + PodTolerationRestriction admission
    plugins add the node selector and the toleration to every pod there), or with their own
    toleration and selector. Unpinned namespaces stay on the stand-in (below).

    Isolation and cleanup, on a machine shared with other test sessions: pods go under a private
    cgroup root (``--cgroup-root=/ragops-kubelet-<id>``, created here, removed on stop), all ports
    are free ones on 127.0.0.1, no iptables chains. ``Node.stop`` stops the kubelet by PID, then the
    engine (which removes the containers), unmounts everything under the node's dir (the kubelet
    bind-mounts its root dir onto itself), removes the cgroups and the dir. kubelet 1.20 hard-codes
    ``/var/log/pods``, ``/var/log/containers`` and ``/var/lib/kubelet/device-plugins``: this
    session's entries there are removed, and the dirs themselves once the last session on the
    machine stops, if they did not exist before the first one started (state in ``STATE_DIR``).

``StandInKubelet`` (STAND-IN, not a kubelet)
    A thread that owns the Node ``node-1`` and writes pod status the way a kubelet would: Running and
    Ready for ordinary pods, Running but never Ready for images tagged ``:broken``, Succeeded - or
    Failed, for images containing ``fail`` or Job names starting with an entry of ``failing_jobs`` -
    for Job pods, and it finishes graceful deletions. It only touches pods on ``node-1``, which are
    those of unpinned namespaces: the scheduler puts them there, and the stand-in binds there the
    ones the scheduler cannot place because their claims have no volume. A pod with the real node's
    selector is never touched. Kept only for what the real node cannot run yet: the Velero tests
    (the rendered ragops CronJobs run on the real node since issue 15: test_jobs.py) (the Velero server is a test helper that restores objects, not
    data: the restored claims have no volumes; the verification Job runs the ``ragops`` image).
    Every pod gets its own IP in 10.244.0.0/16 (reachable through the API server's proxy only via the
    pod-network stand-in, pod_network.py). Everything else - Deployments, ReplicaSets, Jobs, CronJobs, scheduling, namespaces, garbage
    collection - is the real kube-scheduler / kube-controller-manager.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import itertools
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from tests.fixtures import services
from tests.fixtures.docker_assets import busybox_rootfs_tar
from tests.fixtures.docker_engine import BOOKWORM, SYSTEM_PATH, Engine, _unmount_under, start_engine

from .cluster import BIN, Cluster

# ----------------------------------------------------------------------------------------- real node
NODE_NAME = "127.0.0.1"  # --hostname-override: the node's InternalIP (kubectl logs needs an address)
TAINT_KEY = LABEL_KEY = "ragops.test/real-kubelet"
CGROUP_FS = Path("/sys/fs/cgroup")
# kubelet 1.20 hard-codes these (not under --root-dir)
HARDCODED = [Path("/var/log/pods"), Path("/var/log/containers"), Path("/var/lib/kubelet/device-plugins"),
             Path("/var/lib/kubelet")]
STATE_DIR = Path(os.environ.get("RAGOPS_KUBELET_STATE", "/run/ragops-kubelet"))  # shared by all sessions
NODE_DIR_PREFIX = "ragops-kubelet-"


@dataclass(frozen=True)
class TestImages:
    """Images in the node's engine (busybox rootfs, ``docker import``; never pulled)."""

    busybox: str = "local/busybox:1"
    pause: str = "local/pause:1"  # pod sandbox: sh that exits on TERM (a busybox sleep would not)
    rag_api_v1: str = "rag-api:1"  # rollout images: /ready present (exec readiness probe) ...
    rag_api_v2: str = "rag-api:2"
    rag_api_broken: str = "rag-api:broken"  # ... and absent


# PID 1 that sleeps forever but exits at once on TERM (a plain `sleep` as PID 1 ignores SIGTERM)
SLEEP_CMD = ["sh", "-c", "trap 'exit 0' TERM INT; sleep 1000000000 & wait"]


def _rootfs_with(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO(busybox_rootfs_tar())
    with tarfile.open(fileobj=buf, mode="a") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1577836800
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def load_images(engine: Engine) -> TestImages:
    im = TestImages()
    env = f"ENV PATH={SYSTEM_PATH}"
    base = busybox_rootfs_tar()
    engine.run("import", "-c", 'CMD ["/bin/sh"]', "-c", env, "-", im.busybox, input=base)
    engine.run("import", "-c", f"CMD {json.dumps(SLEEP_CMD)}", "-c", env, "-", im.pause, input=base)
    for tag, version, ready in ((im.rag_api_v1, "1", True), (im.rag_api_v2, "2", True),
                                (im.rag_api_broken, "broken", False)):
        files = {"version": version.encode(), **({"ready": b"ok\n"} if ready else {})}
        engine.run("import", "-c", f"CMD {json.dumps(SLEEP_CMD)}", "-c", env, "-c",
                   f"ENV RAG_API_VERSION={version}", "-", tag, input=_rootfs_with(files))
    return im


def find_missing_node() -> list[str]:
    need = [n for n in ("kubelet", "kube-scheduler") if not (BIN / n).is_file()]
    if not (BIN.parent / ".kubelet-complete").exists():
        need.append(".kubelet-complete")
    return need + BOOKWORM.missing()


def pin_namespace(cluster: Cluster, name: str, create: bool = True) -> None:
    """Make every pod created in namespace ``name`` from now on run on the real node."""
    if create:
        cluster.kubectl_run("create", "namespace", name)
    tolerations = json.dumps([{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}])
    cluster.kubectl_run("annotate", "--overwrite", "namespace", name,
                        f"scheduler.alpha.kubernetes.io/node-selector={LABEL_KEY}=true",
                        f"scheduler.alpha.kubernetes.io/defaultTolerations={tolerations}")


@dataclass
class Node:
    cluster: Cluster
    dir: Path
    engine: Engine
    images: TestImages
    cgroup_root: str  # e.g. /ragops-kubelet-ab12cd34 (relative to each hierarchy)
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default=Path())
    _session_file: Path | None = None

    @property
    def name(self) -> str:
        return NODE_NAME

    def get(self) -> dict[str, Any]:
        return json.loads(self.cluster.kubectl_run("get", "node", NODE_NAME, "-o", "json").stdout)

    def ready(self) -> bool:
        res = self.cluster.kubectl_run("get", "node", NODE_NAME, "-o", "json", check=False)
        if res.returncode:
            return False
        conds = json.loads(res.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    def log_tail(self, limit: int = 4000) -> str:
        return services._log_tail(self.log, limit)

    def stop(self) -> None:
        if self.proc is not None:
            services.stop_process(self.proc, grace=10)
        self.engine.stop()  # removes every container (and so their cgroups), stops dockerd
        _unmount_under(self.dir)  # the root-dir self bind mount and any volume mounts
        _remove_cgroups(self.cgroup_root)
        _clean_hardcoded(self.engine.root, self._session_file)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- cgroups
def _hierarchies() -> list[Path]:
    """The mounted cgroup v1 hierarchies (cpu, memory, ..., name=systemd), not the v2 'unified'."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.split()[:1] == ["cgroup"]:
            out.append(Path(pre.split()[4]))
    return out


def _make_cgroup_root(name: str) -> None:
    for h in _hierarchies():
        d = h / name.lstrip("/")
        d.mkdir(exist_ok=True)
        if (h / "cpuset.cpus").exists():  # a new cpuset is empty: copy the parent's
            for f in ("cpuset.cpus", "cpuset.mems"):
                (d / f).write_text((h / f).read_text())


def _remove_cgroups(name: str) -> None:
    for h in [*_hierarchies(), CGROUP_FS / "unified"]:
        top = h / name.lstrip("/")
        if not top.is_dir():
            continue
        dirs = sorted((Path(p) for p, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
        for d in dirs:
            for _ in range(50):  # a cgroup whose last task is exiting is busy for a moment
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    _kill_tasks(d)
                    time.sleep(0.1)


def _kill_tasks(cgroup: Path) -> None:
    with contextlib.suppress(OSError):
        for pid in (cgroup / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid), 9)


# --- the hard-coded dirs, shared by every kubelet session on the machine
@contextlib.contextmanager
def _state_lock() -> Iterator[None]:
    (STATE_DIR / "sessions").mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _live_sessions() -> list[Path]:
    live = []
    for f in (STATE_DIR / "sessions").iterdir():
        try:
            pid = int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if Path(f"/proc/{pid}").exists():
            live.append(f)
        else:
            f.unlink(missing_ok=True)
    return live


def _register_session(node_dir: Path) -> Path:
    """Record which hard-coded dirs pre-date the first live session, then register this one."""
    with _state_lock():
        baseline = STATE_DIR / "preexisting.json"
        if not _live_sessions() and not baseline.exists():
            baseline.write_text(json.dumps([str(p) for p in HARDCODED if p.exists()]))
        me = STATE_DIR / "sessions" / node_dir.name
        me.write_text(f"{os.getpid()} {node_dir}\n")
        return me


def _ours_or_dangling(link: Path, engine_root: Path) -> bool:
    """A pod log link into this session's engine, or into one that is gone (a killed session's)."""
    try:
        target = str(os.readlink(link))
    except OSError:
        return False
    return target.startswith(str(engine_root) + "/") or not link.exists()


def _clean_hardcoded(engine_root: Path, session_file: Path | None) -> None:
    """Remove this session's pod log dirs/links; the dirs themselves when the last session ends."""
    pods, containers = Path("/var/log/pods"), Path("/var/log/containers")
    with _state_lock():
        if pods.is_dir():
            for pod in pods.iterdir():  # <ns>_<pod>_<uid>/<container>/<n>.log -> engine's json log
                logs = list(pod.glob("*/*.log"))
                if logs and all(_ours_or_dangling(x, engine_root) for x in logs):
                    shutil.rmtree(pod, ignore_errors=True)
        if containers.is_dir():
            for link in containers.iterdir():  # -> /var/log/pods/...: dangling once the pod dir is gone
                if link.is_symlink() and not link.exists():
                    link.unlink(missing_ok=True)
        if session_file is not None:
            session_file.unlink(missing_ok=True)
        if _live_sessions():
            return
        baseline = STATE_DIR / "preexisting.json"
        try:
            keep = set(json.loads(baseline.read_text()))
        except (OSError, ValueError):
            keep = {str(p) for p in HARDCODED}  # unknown: remove nothing
        for path in HARDCODED:
            if str(path) not in keep and path.exists():
                shutil.rmtree(path, ignore_errors=True)
        baseline.unlink(missing_ok=True)


def _remove_stale_nodes() -> None:
    """Clean up after a session that was killed (its kubelet died with it: PR_SET_PDEATHSIG)."""
    for d in Path("/tmp").glob(NODE_DIR_PREFIX + "*"):
        try:
            pid = int((d / "kubelet.pid").read_text())
        except (OSError, ValueError):
            pid = 0
        if pid and Path(f"/proc/{pid}").exists():
            continue
        if not pid and time.time() - d.stat().st_mtime < 600:
            continue  # being set up right now by another session
        _unmount_under(d)
        _remove_cgroups("/" + d.name)
        shutil.rmtree(d, ignore_errors=True)


def start_node(cluster: Cluster, timeout: float = 90) -> Node:
    """A private dockerd + the real kubelet, registered as Node 127.0.0.1 and Ready."""
    if missing := find_missing_node():
        raise RuntimeError(f"real kubelet node unavailable, missing: {', '.join(missing)} "
                           "(run `bash scripts/setup.d/50-kube.sh` and 40-docker.sh once on this machine)")
    _remove_stale_nodes()
    ndir = Path(tempfile.mkdtemp(prefix=NODE_DIR_PREFIX, dir="/tmp"))  # short: unix socket paths
    engine = start_engine(BOOKWORM)
    node: Node | None = None
    try:
        images = load_images(engine)
        port, healthz = services.free_ports(2)
        node = Node(cluster, ndir, engine, images, f"/{ndir.name}", port, log=ndir / "kubelet.log")
        _make_cgroup_root(node.cgroup_root)
        node._session_file = _register_session(ndir)
        for sub in ("root", "certs", "dockershim", "volume-plugins", "seccomp"):
            (ndir / sub).mkdir()
        sock = f"unix://{ndir / 'dockershim.sock'}"
        argv = [
            str(BIN / "kubelet"), f"--kubeconfig={cluster.kubeconfig}", f"--root-dir={ndir / 'root'}",
            f"--cert-dir={ndir / 'certs'}", f"--hostname-override={NODE_NAME}",
            "--container-runtime=docker", f"--docker-endpoint={engine.host}",
            f"--container-runtime-endpoint={sock}", f"--image-service-endpoint={sock}",
            f"--experimental-dockershim-root-directory={ndir / 'dockershim'}",
            f"--pod-infra-container-image={images.pause}", "--network-plugin=",
            "--cgroup-driver=cgroupfs", f"--cgroup-root={node.cgroup_root}", "--fail-swap-on=false",
            "--address=127.0.0.1", f"--port={port}", "--read-only-port=0",
            "--healthz-bind-address=127.0.0.1", f"--healthz-port={healthz}",
            "--anonymous-auth=true", "--authorization-mode=AlwaysAllow",  # the apiserver has no client cert
            f"--volume-plugin-dir={ndir / 'volume-plugins'}", f"--seccomp-profile-root={ndir / 'seccomp'}",
            "--enforce-node-allocatable=", "--eviction-hard=", "--image-gc-high-threshold=100",
            "--make-iptables-util-chains=false", "--oom-score-adj=0",
            f"--register-with-taints={TAINT_KEY}=true:NoSchedule", f"--node-labels={LABEL_KEY}=true",
            "--node-status-update-frequency=2s", "--v=1",
        ]
        node.proc = services.start_process(argv, node.log, env={**os.environ, "PATH": SYSTEM_PATH})
        (ndir / "kubelet.pid").write_text(str(node.proc.pid))
        services.wait_for(node.ready, "kubelet node Ready", node.proc, node.log, timeout)
    except BaseException:
        if node is not None:
            node.stop()
        else:
            engine.stop()
            shutil.rmtree(ndir, ignore_errors=True)
        raise
    return node


# ------------------------------------------------------------------------------------------ stand-in
NODE = STAND_IN_NODE = "node-1"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_node() -> dict[str, Any]:
    capacity = {"cpu": "16", "memory": "64Gi", "pods": "200"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "ragops.test/stand-in": "true"}},
            "status": {"capacity": capacity, "allocatable": capacity,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "STAND-IN: tests/k8s/kubelet_helper.py, not a kubelet",
                                       "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}}


class StandInKubelet:
    """STAND-IN for a kubelet on Node ``node-1`` (see the module docstring for what and why)."""

    def __init__(self, url: str, session: requests.Session) -> None:
        self.url, self.s = url, session
        self.failing_jobs: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stand-in-kubelet", daemon=True)
        self.errors: list[str] = []
        self._ips = itertools.count(8)

    def next_ip(self) -> str:
        """A fresh pod IP (10.244.0.0/16, nowhere: the pod network is pod_network.PodNetwork)."""
        n = next(self._ips)
        return f"10.244.{(n // 250) % 250}.{n % 250 + 2}"

    def start(self) -> StandInKubelet:
        node = make_node()
        res = self.s.post(f"{self.url}/api/v1/nodes", json=node, timeout=10)
        if res.status_code not in (201, 409):
            raise RuntimeError(f"registering node failed: {res.status_code} {res.text}")
        self._merge(f"/api/v1/nodes/{NODE}/status", {"status": node["status"]})
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _merge(self, path: str, body: dict[str, Any]) -> None:
        self.s.patch(f"{self.url}{path}", json=body, timeout=10,
                     headers={"Content-Type": "application/merge-patch+json"})

    def _loop(self) -> None:
        beat = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - beat > 5:  # the node lifecycle controller wants a heartbeat
                    self._merge(f"/api/v1/nodes/{NODE}/status", {"status": make_node()["status"]})
                    beat = time.monotonic()
                for on in (NODE, ""):  # its own pods, and unscheduled ones
                    pods = self.s.get(f"{self.url}/api/v1/pods", params={"fieldSelector": f"spec.nodeName={on}"},
                                      timeout=10).json().get("items", [])
                    for pod in pods:
                        self.handle(pod)
            except Exception as exc:  # noqa: BLE001 - keep serving; tests see errors if they matter
                self.errors.append(repr(exc))
            self._stop.wait(0.25)

    def handle(self, pod: dict[str, Any]) -> None:
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
        base = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        if not spec.get("nodeName"):
            # The scheduler puts unpinned pods on node-1 by itself, but not those whose claims have no
            # volume (the rendered CronJobs, Velero's restored namespaces): bind those here, as before.
            # A pod meant for the real node is never touched; a double binding is a harmless 409.
            if LABEL_KEY not in (spec.get("nodeSelector") or {}):
                binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"]},
                           "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}}
                self.s.post(f"{self.url}{base}/binding", json=binding, timeout=10)
            return
        if spec["nodeName"] != NODE:  # the real kubelet's pods
            return
        if meta.get("deletionTimestamp"):
            self.s.delete(f"{self.url}{base}", json={"gracePeriodSeconds": 0}, timeout=10)
            return
        if status.get("phase") in ("Succeeded", "Failed") or status.get("containerStatuses"):
            return
        self._merge(f"{base}/status", {"status": self.make_status(pod)})

    def make_status(self, pod: dict[str, Any]) -> dict[str, Any]:
        containers = pod["spec"]["containers"]
        owners = {o["kind"] for o in pod["metadata"].get("ownerReferences", [])}
        job = pod["metadata"].get("labels", {}).get("job-name", "")
        t = now()
        if "Job" in owners:
            failed = any(job.startswith(p) for p in self.failing_jobs) or any("fail" in c["image"] for c in containers)
            code = 1 if failed else 0
            return {"phase": "Failed" if failed else "Succeeded", "hostIP": "127.0.0.1", "podIP": self.next_ip(),
                    "startTime": t,
                    "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                                   {"type": "Ready", "status": "False", "lastTransitionTime": t}],
                    "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False,
                                           "restartCount": 0, "state": {"terminated": {
                                               "exitCode": code, "reason": "Error" if failed else "Completed",
                                               "startedAt": t, "finishedAt": t}}} for c in containers]}
        ready = not any(c["image"].endswith(":broken") for c in containers)
        flag = "True" if ready else "False"
        return {"phase": "Running", "hostIP": "127.0.0.1", "podIP": self.next_ip(), "startTime": t,
                "conditions": [{"type": k, "status": "True" if k in ("PodScheduled", "Initialized") else flag,
                                "lastTransitionTime": t} for k in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": ready,
                                       "started": True, "restartCount": 0, "state": {"running": {"startedAt": t}}}
                                      for c in containers]}


KubeletHelper = StandInKubelet  # the old name


def wait_until(check: Any, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
