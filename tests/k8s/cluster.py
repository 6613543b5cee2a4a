"""A real Kubernetes 1.20 control plane on loopback: etcd + kube-apiserver + kube-controller-manager
+ kube-scheduler.

Binaries come from the machine cache built by scripts/setup.d/50-kube.sh ($RAGOPS_KUBE_DIR, default
/var/cache/ragops/kube-1.20/bin). The API server uses a static token (group system:masters), RBAC,
its own service-account keys, the PodNodeSelector + PodTolerationRestriction admission plugins (a
namespace annotation pins its pods to a node: kubelet_helper.pin_namespace) and reaches kubelets by
their InternalIP (``kubectl logs``). The controller manager runs every controller except node
IPAM, cloud and route/service ones (its node lifecycle controller lifts the real node's
``not-ready`` taint; the stand-in node heartbeats). The nodes - a real kubelet and a stand-in
- are in kubelet_helper.py.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.fixtures import services

KUBE_DIR = Path(os.environ.get("RAGOPS_KUBE_DIR", "/var/cache/ragops/kube-1.20"))
BIN = KUBE_DIR / "bin"


def find_missing() -> list[str]:
    need = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kubectl"]
    return [n for n in need if not (BIN / n).is_file()] + ([] if (KUBE_DIR / ".complete").exists() else [".complete"])


@dataclass
class Cluster:
    url: str
    token: str
    kubeconfig: Path
    kubectl: str
    workdir: Path
    ca: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    pod_network: Any = None  # the pod-network stand-in (pod_network.PodNetwork) when started with one

    def session(self) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.token}"
        s.verify = str(self.ca)  # the API server's self-generated serving cert (+ its CA)
        s.trust_env = False  # a REQUESTS_CA_BUNDLE in the environment would override `verify`
        return s

    def kubectl_run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([self.kubectl, "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
                             capture_output=True, text=True, timeout=120)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {res.stderr}")
        return res

    def apply(self, objs: list[dict[str, Any]]) -> None:
        self.kubectl_run("apply", "-f", "-", stdin="---\n".join(yaml.safe_dump(o) for o in objs))

    def env(self) -> dict[str, str]:
        return {**os.environ, "RAGOPS_KUBECTL": self.kubectl, "KUBECONFIG": str(self.kubeconfig)}

    def stop(self) -> None:
        for proc in reversed(self.procs):
            services.stop_process(proc, grace=5)


def write_keys(workdir: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv, pub = workdir / "sa.key", workdir / "sa.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def write_kubeconfig(path: Path, url: str, token: str, ca: Path) -> None:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": url, "certificate-authority": str(ca)}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
    }))
    path.chmod(0o600)


def make_apiserver_env(pod_network: str | None) -> dict[str, str]:
    """The API server's environment: no inherited proxies; ``pod_network`` (if set) as its HTTP proxy.
    Go never proxies loopback addresses, so etcd, kubelets on 127.0.0.1 and webhooks stay direct."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    if pod_network:
        env["HTTP_PROXY"] = pod_network
    return env


def start_cluster(workdir: Path, timeout: float = 90, pod_network: str | None = None) -> Cluster:
    """``pod_network``: an HTTP proxy URL the API server's service/pod proxy goes through (pod_network.py)."""
    workdir.mkdir(parents=True, exist_ok=True)
    etcd_client, etcd_peer, api_port = services.free_ports(3)
    token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
    priv, pub = write_keys(workdir)
    url = f"https://127.0.0.1:{api_port}"
    kubeconfig = workdir / "kubeconfig"
    ca = workdir / "certs" / "apiserver.crt"
    write_kubeconfig(kubeconfig, url, token, ca)
    cluster = Cluster(url=url, token=token, kubeconfig=kubeconfig, kubectl=str(BIN / "kubectl"), workdir=workdir, ca=ca)
    try:
        etcd_log = workdir / "etcd.log"
        etcd = services.start_process([
            str(BIN / "etcd"), "--name", "test", "--data-dir", str(workdir / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"test=http://127.0.0.1:{etcd_peer}", "--log-level", "warn",
        ], etcd_log)
        cluster.procs.append(etcd)
        services.wait_for(lambda: services.port_open("127.0.0.1", etcd_client), "etcd", etcd, etcd_log, timeout)
        api_log = workdir / "apiserver.log"
        api = services.start_process([
            str(BIN / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            "--insecure-port=0", f"--cert-dir={workdir / 'certs'}", f"--token-auth-file={workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC", f"--service-account-key-file={pub}",
            f"--service-account-signing-key-file={priv}", "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/24", "--disable-admission-plugins=ServiceAccount",
            "--enable-admission-plugins=PodNodeSelector,PodTolerationRestriction",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--allow-privileged=true", "--profiling=false", "--endpoint-reconciler-type=none", "--enable-priority-and-fairness=false", "--v=1",
        ], api_log, env=make_apiserver_env(pod_network))
        cluster.procs.append(api)
        services.wait_for(lambda: ca.exists() and cluster.session().get(f"{url}/readyz", timeout=2).status_code == 200,
                          "kube-apiserver", api, api_log, timeout)
        kcm_log = workdir / "controller-manager.log"
        kcm = services.start_process([
            str(BIN / "kube-controller-manager"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-route,-service",
            "--port=0", "--secure-port=0", "--use-service-account-credentials=false",
            "--concurrent-deployment-syncs=2", "--v=1",
        ], kcm_log)
        cluster.procs.append(kcm)
        sched_log = workdir / "scheduler.log"
        sched = services.start_process([
            str(BIN / "kube-scheduler"), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--leader-elect=false", "--port=0", "--secure-port=0",
            "--profiling=false", "--v=1",
        ], sched_log)
        cluster.procs.append(sched)
        deadline = time.monotonic() + timeout
        while cluster.kubectl_run("get", "serviceaccount", "default", check=False).returncode != 0:
            if sched.poll() is not None:
                raise RuntimeError(f"kube-scheduler exited rc {sched.returncode}:\n{services._log_tail(sched_log)}")
            if kcm.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kube-controller-manager not working:\n{services._log_tail(kcm_log)}")
            time.sleep(0.3)
    except BaseException:
        cluster.stop()
        raise
    return cluster
