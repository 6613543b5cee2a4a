"""What runs on a private engine: test images (build_images) and Compose projects (ComposeProject).

- local/busybox:1       `docker import` of a busybox-static rootfs (created now)
- local/rag-api:1, :2   `docker build` FROM local/busybox:1: busybox httpd on :8080 serving /health
                        ("ok") and /version (the tag), HEALTHCHECK wget /health, ENV RAG_API_VERSION
                        and LABEL org.opencontainers.image.version
- local/rag-api:broken  same, but its HEALTHCHECK always fails (unhealthy after ~2 s)
- local/old:1 + one untagged image, both created OLD_CREATED (2020) via a hand-written `docker load`
  tarball, for `until=` prune filters.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from docker_engine import BUSYBOX, SYSTEM_PATH, Engine

OLD_CREATED = "2020-01-02T03:04:05Z"


@dataclass(frozen=True)
class Images:
    busybox: str = "local/busybox:1"
    api_v1: str = "local/rag-api:1"
    api_v2: str = "local/rag-api:2"
    broken: str = "local/rag-api:broken"
    old: str = "local/old:1"
    old_dangling: str = ""  # image ID of an untagged image also created OLD_CREATED
    old_created: str = OLD_CREATED
    ids: dict[str, str] = field(default_factory=dict)  # name -> sha256:... image ID


def busybox_rootfs_tar() -> bytes:
    """A deterministic rootfs tar: busybox-static + its applet symlinks, /etc/passwd, /www."""
    applets = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    buf = io.BytesIO()
    mtime = 1577836800  # 2020-01-01

    def add(name: str, kind: bytes = tarfile.DIRTYPE, data: bytes = b"", mode: int = 0o755,
            link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime, info.linkname, info.size = kind, mode, mtime, link, len(data)
        tar.addfile(info, io.BytesIO(data) if data else None)

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "var", "www", "data",
                  "proc", "sys", "dev"):
            add(d)
        add("tmp", mode=0o1777)
        add("bin/busybox", tarfile.REGTYPE, BUSYBOX.read_bytes())
        for a in applets:
            if a != "bin/busybox":
                add(a, tarfile.SYMTYPE, mode=0o777, link="/bin/busybox")
        add("etc/passwd", tarfile.REGTYPE, b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
            0o644)
        add("etc/group", tarfile.REGTYPE, b"root:x:0:\nnogroup:x:65534:\n", 0o644)
    return buf.getvalue()


# /health is a static file "ok"; sh (not PID 1 under `init`) traps TERM so stops are quick anyway.
_DOCKERFILE = """\
FROM {base}
ARG VERSION
COPY www/ /www/
ENV RAG_API_VERSION=$VERSION
LABEL org.opencontainers.image.version=$VERSION ragops.test=rag-api
HEALTHCHECK --interval=1s --timeout=3s --retries={retries} CMD {check}
EXPOSE 8080
CMD ["sh", "-c", "trap 'exit 0' TERM INT; httpd -f -p 8080 -h /www & wait"]
"""
HEALTH_OK = "wget -q -O /dev/null http://127.0.0.1:8080/health || exit 1"


def _docker_load_tar(layer: bytes, tags: list[str], labels: dict[str, str]) -> bytes:
    """A `docker save`-format tarball (manifest.json + config + one layer) created OLD_CREATED."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": OLD_CREATED,
        "config": {"Cmd": ["/bin/sh"], "Env": [f"PATH={SYSTEM_PATH}"], "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": OLD_CREATED, "created_by": "ragops tests: hand-written docker load tarball"}],
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": tags or None,
                            "Layers": [diff_id[7:] + "/layer.tar"]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in ((diff_id[7:] + "/layer.tar", layer), (config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1577836800
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_images(engine: Engine) -> Images:
    rootfs = busybox_rootfs_tar()
    im = Images()
    engine.run("import", "-c", 'CMD ["/bin/sh"]', "-c", f"ENV PATH={SYSTEM_PATH}", "-", im.busybox, input=rootfs)
    with tempfile.TemporaryDirectory(prefix="ragops-build-") as tmp:
        for tag, version, check, retries in ((im.api_v1, "1", HEALTH_OK, 3), (im.api_v2, "2", HEALTH_OK, 3),
                                             (im.broken, "broken", "exit 1", 1)):
            ctx = Path(tmp) / version
            (ctx / "www").mkdir(parents=True)
            (ctx / "www/health").write_text("ok")
            (ctx / "www/version").write_text(version)
            (ctx / "Dockerfile").write_text(_DOCKERFILE.format(base=im.busybox, check=check, retries=retries))
            engine.run("build", "-q", "--network", "none", "--build-arg", f"VERSION={version}", "-t", tag, str(ctx),
                       env_extra={"DOCKER_BUILDKIT": "0"})
    engine.run("load", input=_docker_load_tar(rootfs, [im.old], {"ragops.test": "old"}))
    out = engine.run("load", input=_docker_load_tar(rootfs, [], {"ragops.test": "old-dangling"})).stdout
    dangling = out.decode().strip().rsplit(" ", 1)[-1]  # "Loaded image ID: sha256:..."
    names = [im.busybox, im.api_v1, im.api_v2, im.broken, im.old]
    ids = {n: i["Id"] for n, i in zip(names, engine.inspect(*names, kind="image"), strict=True)}
    return Images(old_dangling=dangling, ids=ids | {"old_dangling": dangling})


# ------------------------------------------------------------------------------ compose project
# The test engine has no bridge network (dockerd --bridge=none) and `network_mode: host` cannot run
# two replicas of one port, so every replica gets its own network namespace with only loopback
# (`network_mode: none`). The image's HEALTHCHECK wgets 127.0.0.1:8080/health inside the container;
# tests reach the API with `docker exec` (ComposeProject.http_get). `init: true` makes stops quick.
COMPOSE_YAML = """\
name: {name}
services:
  api:
    image: {image}
    init: true
    network_mode: none
    deploy:
      replicas: {replicas}
    volumes:
      - rag_chroma_data:/data
    labels:
      ragops.test: "1"
volumes:
  rag_chroma_data: {{}}
"""


@dataclass
class ComposeProject:
    engine: Engine
    name: str
    dir: Path
    service: str = "api"

    @property
    def file(self) -> Path:
        return self.dir / "compose.yaml"

    @property
    def volume(self) -> str:
        """Engine-level name of the `rag_chroma_data` volume."""
        return f"{self.name}_rag_chroma_data"

    def compose(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.engine.run("compose", "-p", self.name, "-f", str(self.file), *args, check=check,
                               timeout=timeout, cwd=self.dir)

    def up(self, *extra: str, wait: bool = True, timeout: int = 120) -> None:
        self.compose("up", "-d", *(("--wait", "--wait-timeout", str(timeout)) if wait else ()), *extra,
                     timeout=timeout + 60)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "1", check=False)

    def containers(self, service: str | None = None, all: bool = False) -> list[str]:
        """Container IDs of the project (of one service), sorted by container number."""
        flt = ["--filter", f"label=com.docker.compose.project={self.name}",
               "--filter", f"label=com.docker.compose.service={service or self.service}"]
        ids = self.engine.run("ps", "-q", "--no-trunc", *(["-a"] if all else []), *flt).stdout.split()
        if not ids:
            return []
        infos = self.engine.inspect(*ids)
        infos.sort(key=lambda i: int(i["Config"]["Labels"].get("com.docker.compose.container-number", 0)))
        return [i["Id"] for i in infos]

    def http_get(self, container: str, path: str = "/health") -> str:
        return self.engine.run("exec", container, "wget", "-q", "-O", "-", f"http://127.0.0.1:8080{path}").stdout


def write_compose_project(engine: Engine, base_dir: Path, name: str, image: str, replicas: int = 2,
                          yaml_text: str | None = None) -> ComposeProject:
    """Write `base_dir/name/compose.yaml` (COMPOSE_YAML unless `yaml_text` is given)."""
    proj = ComposeProject(engine, name, base_dir / name)
    proj.dir.mkdir(parents=True, exist_ok=True)
    proj.file.write_text(yaml_text or COMPOSE_YAML.format(name=name, image=image, replicas=replicas))
    return proj
