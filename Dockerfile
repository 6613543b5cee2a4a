# The ragops image the k8s/ CronJobs run (`invoke <task> --host local --config /etc/ragops/ragops.yaml`).
# Build: docker build -t ragops:0.1.0 .   (k8s/overlays/* set the tag through kustomize `images:`)
# Runs as UID 10001 with a read-only root filesystem: everything writable is a mounted volume
# (/tmp and /var/tmp emptyDirs, the logs PVC), so Python must not write bytecode at runtime.
#
# Needs BuildKit (the default since Docker 23; `DOCKER_BUILDKIT=1` on 20.10) for the optional
# build secret below. BASE: any Debian bookworm image with python3 (3.11) and pip; the default is
# the official Python image. Machines without a registry build it on a local Debian base
# (scripts/setup.d/60-images.sh, docs/docker.md "Images of the RAG stack"):
#   docker build --network host --build-arg BASE=ragops/debian:bookworm-<key> \
#     --secret id=hostca,src=/etc/ssl/certs/ca-certificates.crt -t ragops:0.1.0 .
# The `hostca` secret (optional) is a CA bundle for a TLS-intercepting proxy: it replaces the
# image's bundle only while pip runs and is never stored in a layer.
# kubernetes-client: Debian's kubectl (1.20 on bookworm) for velero.restore-test's CronJob (k8s/base/velero-drill.yaml);
# a base image with a newer kubectl on PATH first works the same.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends restic openssh-client sqlite3 redis-server kubernetes-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/ragops
COPY pyproject.toml README.md tasks.py ./
COPY ragops ./ragops
# PIP_BREAK_SYSTEM_PACKAGES: Debian's own python3 refuses system-wide installs without it (PEP 668);
# the official image's pip ignores it.
RUN --mount=type=secret,id=hostca \
    set -eu; ca=/etc/ssl/certs/ca-certificates.crt; \
    if [ -s /run/secrets/hostca ]; then \
        if [ -e "$ca" ]; then cp -p "$ca" /tmp/ca.orig; else mkdir -p "${ca%/*}"; fi; \
        cat /run/secrets/hostca > "$ca"; export PIP_CERT="$ca"; \
    fi; \
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir --root-user-action=ignore '.[data]'; \
    if [ -e /tmp/ca.orig ]; then mv /tmp/ca.orig "$ca"; elif [ -s /run/secrets/hostca ]; then rm -f "$ca"; fi; \
    python3 -m compileall -q /opt/ragops/ragops; \
    groupadd --gid 10001 ragops && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home ragops

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ANONYMIZED_TELEMETRY=False \
    HOME=/tmp \
    RAGOPS_CONFIG=/etc/ragops/ragops.yaml

USER 10001:10001
ENTRYPOINT ["invoke", "--search-root", "/opt/ragops"]
CMD ["--list"]
