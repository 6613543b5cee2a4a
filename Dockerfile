# The ragops image the k8s/ CronJobs run (`invoke <task> --host local --config /etc/ragops/ragops.yaml`).
# Build: docker build -t ragops:0.1.0 .   (k8s/overlays/* set the tag through kustomize `images:`)
# Runs as UID 10001 with a read-only root filesystem: everything writable is a mounted volume
# (/tmp and /var/tmp emptyDirs, the logs PVC), so Python must not write bytecode at runtime.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends restic openssh-client sqlite3 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/ragops
COPY pyproject.toml README.md tasks.py ./
COPY ragops ./ragops
RUN pip install --no-cache-dir '.[data]' \
    && python -m compileall -q /opt/ragops/ragops \
    && groupadd --gid 10001 ragops && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home ragops

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ANONYMIZED_TELEMETRY=False \
    HOME=/tmp \
    RAGOPS_CONFIG=/etc/ragops/ragops.yaml

USER 10001:10001
ENTRYPOINT ["invoke", "--search-root", "/opt/ragops"]
CMD ["--list"]
