#!/usr/bin/env bash
# Images of the real RAG services, built ONCE PER MACHINE and cached as `docker save` tarballs
# (run as root by scripts/setup.sh; idempotent, well under a second when everything is cached).
#
#   name     built from                        what
#   debian   mmdebstrap --variant=apt bookworm  python3, python3-pip, ca-certificates, passwd; `docker import`
#   redis    images/redis/   on debian          Debian's redis-server, data in /data
#   chroma   images/chroma/  on debian          chromadb==<the .venv's version>: `chroma run --path /data`
#   rag-api  images/rag-api/ on chroma          ragops/rag_api.py + redis-py==<the .venv's version>
#   ragops   ./Dockerfile    on debian          the project's own image (--build-arg BASE=<debian>)
#
# Each image is tagged ragops/<name>:<key> (debian: ragops/debian:bookworm-<key>), where <key> is
# the first 16 hex digits of a sha256 over its build context (path, mode, content of every file),
# build arguments, its parent's key and RECIPE below: change any input and only that image and the
# ones built on it are rebuilt. Cache ($RAGOPS_IMAGES_DIR, default /var/cache/ragops/images):
#   <name>-<key>.tar    `docker save` of the tag;  <name>-<key>.json  id, sizes, build time, inputs
#   logs/<name>-<key>.log  the build output;  the two newest keys per name are kept.
# Tests load the tarballs into their private engines (tests/fixtures/compose_stack.py).
#
# Builds run on a temporary private dockerd 20.10 (no bridge, like tests/fixtures/docker_engine.py), with
# BuildKit and `--network host` for apt/pip. The host's CA bundle is passed as the build secret
# `hostca` (package downloads may pass a TLS-intercepting proxy whose CA only the host trusts):
# one RUN swaps it in for pip and puts the image's own bundle back; every image's bundle is then
# checked to be the Debian base's one (a leaked host CA fails the build).
#
# Usage: 60-images.sh [NAME...]     build what is missing (default: $RAGOPS_IMAGES_NAMES, else all five;
#                                   e.g. RAGOPS_IMAGES_NAMES="redis chroma rag-api" skips the ragops image,
#                                   whose key changes with every edit under ragops/: ~1.5-2.5 min per rebuild)
#        60-images.sh --print       JSON of the wanted tags/tarballs and which are cached; builds nothing
#
# Run by scripts/setup.sh, a failure is reported (ERROR + build log tail) without stopping the setup
# and tests/compose then FAIL naming the missing images; run directly, or with
# RAGOPS_IMAGES_STRICT=1, a failure exits 1. RAGOPS_IMAGES=0 skips the step.
set -euo pipefail

ROOT="${RAGOPS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

if [ "${1:-}" != "--print" ] && [ -z "${_RAGOPS_IMAGES_INNER:-}" ]; then
    if [ "${RAGOPS_IMAGES:-1}" = "0" ]; then
        echo "[60-images] RAGOPS_IMAGES=0: skipping the image builds"
        exit 0
    fi
    if _RAGOPS_IMAGES_INNER=1 bash "${BASH_SOURCE[0]}" "$@"; then
        exit 0
    fi
    echo "[60-images] ERROR: building the RAG stack images FAILED (see above); tests/compose will fail" \
        "until \`bash scripts/setup.d/60-images.sh\` succeeds" >&2
    default_strict=1
    [ -n "${RAGOPS_ROOT:-}" ] && default_strict=0  # under scripts/setup.sh
    [ "${RAGOPS_IMAGES_STRICT:-$default_strict}" = "1" ] && exit 1
    exit 0
fi

RECIPE=1  # bump to rebuild every image (a change of how they are built, not of their inputs)
DIR="${RAGOPS_IMAGES_DIR:-/var/cache/ragops/images}"
VENV_PY="$ROOT/.venv/bin/python"
HOST_CA="${RAGOPS_IMAGES_HOST_CA:-/etc/ssl/certs/ca-certificates.crt}"
DOCKERD=/usr/sbin/dockerd
DOCKER=/usr/bin/docker  # the CLI of Debian's docker.io (20.10: built-in BuildKit client, --secret)
SUITE=bookworm
MIRROR="${RAGOPS_IMAGES_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${RAGOPS_IMAGES_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
BASE_PKGS=python3,python3-pip,ca-certificates,passwd
ALL=(debian redis chroma rag-api ragops)
declare -A PARENT=([redis]=debian [chroma]=debian [rag-api]=chroma [ragops]=debian)

log() { echo "[60-images] $(date +%H:%M:%S) $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PRINT=0
WANT=()
for arg in "$@"; do
    case "$arg" in
        --print) PRINT=1 ;;
        debian | redis | chroma | rag-api | ragops) WANT+=("$arg") ;;
        *) die "unknown argument $arg (names: ${ALL[*]})" ;;
    esac
done
if ((${#WANT[@]} == 0)); then
    # shellcheck disable=SC2206
    WANT=(${RAGOPS_IMAGES_NAMES:-${ALL[*]}})
fi
for name in "${WANT[@]}"; do
    [ -n "${PARENT[$name]:-}" ] || [ "$name" = debian ] || die "unknown image $name (names: ${ALL[*]})"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ragops-images-XXXXXX")"
ENGINE=""
DPID=""

stop_engine() {
    [ -n "$ENGINE" ] || return 0
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID"
        for _ in $(seq 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$DPID" 2>/dev/null || true
    fi
    # containerd / shims dockerd started for this engine (their command lines name its dirs)
    local pid pids
    mapfile -t pids < <(grep -l -F -- "$ENGINE" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3)  # grep has exited
    for pid in "${pids[@]}"; do
        if [ "$pid" != "$$" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    awk -v p="$ENGINE" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r \
        | while read -r mp; do umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true; done
    rm -rf "$ENGINE"
    ENGINE=""
}
cleanup() { stop_engine; rm -rf "$WORK"; }
trap cleanup EXIT

# --- inputs -----------------------------------------------------------------------------
venv_version() {  # importlib.metadata: fast (importing chromadb takes seconds)
    "$VENV_PY" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' "$1"
}

ensure_venv() {  # this hook runs before setup.sh's venv step: run that step now if it is due
    local want have
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    have="$(cat "$ROOT/.venv/.ragops-stamp" 2>/dev/null || true)"
    if [ ! -x "$VENV_PY" ] || [ "$want" != "$have" ]; then
        log "the .venv is missing or stale: running scripts/setup.sh without hooks first"
        RAGOPS_SETUP_HOOKS=0 bash "$ROOT/scripts/setup.sh"
    fi
}

# Copy each image's build context to $WORK/ctx/<name> (the files the build sees; also what is hashed).
make_contexts() {
    mkdir -p "$WORK/ctx/debian"
    printf 'suite=%s\nmirror=%s\nsecurity=%s\ninclude=%s\nvariant=apt\nrecommends=false\n' \
        "$SUITE" "$MIRROR" "$SECURITY_MIRROR" "$BASE_PKGS" >"$WORK/ctx/debian/mmdebstrap.conf"
    for name in redis chroma rag-api; do
        cp -a "$ROOT/images/$name" "$WORK/ctx/$name"
    done
    cp -a "$ROOT/ragops/rag_api.py" "$WORK/ctx/rag-api/rag_api.py"
    mkdir -p "$WORK/ctx/ragops"
    cp -a "$ROOT/Dockerfile" "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/tasks.py" "$WORK/ctx/ragops/"
    tar -C "$ROOT" --exclude=__pycache__ --exclude='*.py[co]' --exclude='*.egg-info' -cf - ragops \
        | tar -C "$WORK/ctx/ragops" -xf -
}

ctx_digest() {  # mode, path and content of every file of a context
    (cd "$1" && find . -type f -printf '%m %p\n' | LC_ALL=C sort \
        && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

declare -A KEY TAG ARGS
compute_keys() {
    ARGS[debian]=""
    ARGS[redis]=""
    ARGS[chroma]="CHROMADB_VERSION=$CHROMADB_VERSION"
    ARGS[rag-api]="REDIS_PY_VERSION=$REDIS_PY_VERSION"
    ARGS[ragops]=""
    local name parent
    for name in "${ALL[@]}"; do
        parent="${PARENT[$name]:-}"
        KEY[$name]="$(printf 'recipe=%s\nname=%s\nparent=%s\nargs=%s\ncontext=%s\n' "$RECIPE" "$name" \
            "${parent:+${KEY[$parent]}}" "${ARGS[$name]}" "$(ctx_digest "$WORK/ctx/$name")" | sha256sum | cut -c1-16)"
        if [ "$name" = debian ]; then TAG[$name]="ragops/debian:$SUITE-${KEY[$name]}"
        else TAG[$name]="ragops/$name:${KEY[$name]}"; fi
    done
}

tar_of() { echo "$DIR/$1-${KEY[$1]}.tar"; }
meta_of() { echo "$DIR/$1-${KEY[$1]}.json"; }
cached() { [ -s "$(tar_of "$1")" ] && [ -s "$(meta_of "$1")" ]; }

print_json() {
    local sep="" name
    printf '{"dir": "%s", "images": {' "$DIR"
    for name in "${ALL[@]}"; do
        printf '%s"%s": {"tag": "%s", "key": "%s", "tar": "%s", "meta": "%s", "cached": %s}' "$sep" "$name" \
            "${TAG[$name]}" "${KEY[$name]}" "$(tar_of "$name")" "$(meta_of "$name")" \
            "$(cached "$name" && echo true || echo false)"
        sep=", "
    done
    printf '}}\n'
}

# --- the build engine -----------------------------------------------------------------------
dk() { DOCKER_HOST="unix://$ENGINE/sock" DOCKER_CONFIG="$ENGINE/config" DOCKER_BUILDKIT=1 "$DOCKER" "$@"; }

start_engine() {
    { [ -x "$DOCKERD" ] && [ -x "$DOCKER" ]; } || die "$DOCKERD / $DOCKER missing: run scripts/setup.d/40-docker.sh"
    ENGINE="$(mktemp -d /tmp/ragops-imgbuild-XXXXXX)"  # short: the socket path
    mkdir -p "$ENGINE/data" "$ENGINE/exec" "$ENGINE/config"
    echo '{}' >"$ENGINE/daemon.json"
    echo '{}' >"$ENGINE/config/config.json"
    "$DOCKERD" --config-file "$ENGINE/daemon.json" --data-root "$ENGINE/data" --exec-root "$ENGINE/exec" \
        --pidfile "$ENGINE/dockerd.pid" -H "unix://$ENGINE/sock" --bridge=none --iptables=false \
        --ip6tables=false --ip-forward=false >"$ENGINE/dockerd.log" 2>&1 </dev/null &
    DPID=$!
    for _ in $(seq 300); do
        dk version >/dev/null 2>&1 && { log "build engine: dockerd $(dk version -f '{{.Server.Version}}') in $ENGINE"; return 0; }
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 30 "$ENGINE/dockerd.log" >&2
    die "the build dockerd did not start"
}

ensure_loaded() {  # make the parent image available in the build engine
    local name="$1"
    dk image inspect "${TAG[$name]}" >/dev/null 2>&1 && return 0
    cached "$name" || die "internal: $name is neither built nor cached"
    log "loading $(basename "$(tar_of "$name")") into the build engine"
    dk load -q -i "$(tar_of "$name")" >/dev/null
}

ca_digest() {  # sha256 of the CA bundle inside an image
    dk run --rm --network none --entrypoint sha256sum "$1" /etc/ssl/certs/ca-certificates.crt | cut -d' ' -f1
}

build_debian() {
    command -v mmdebstrap >/dev/null || {
        log "installing mmdebstrap"
        apt-get -o DPkg::Lock::Timeout=300 -q update
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q install -y --no-install-recommends mmdebstrap
    }
    log "mmdebstrap --variant=apt $SUITE (+$BASE_PKGS)"
    # (called in an `if`: set -e does not apply, hence the && chain)
    mmdebstrap --variant=apt --aptopt='Apt::Install-Recommends "false"' --include="$BASE_PKGS" \
        "$SUITE" "$WORK/rootfs.tar" "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
        "deb $SECURITY_MIRROR $SUITE-security main" \
    && dk import -c 'CMD ["/bin/bash"]' -c 'ENV LANG=C.UTF-8' \
        -c "LABEL org.opencontainers.image.title=\"ragops debian $SUITE base\" ragops.image=debian ragops.image.key=${KEY[debian]}" \
        -m "mmdebstrap --variant=apt --include=$BASE_PKGS $SUITE" "$WORK/rootfs.tar" "${TAG[debian]}" >/dev/null \
    && rm -f "$WORK/rootfs.tar"
}

build_image() {  # docker build of a Dockerfile context on its parent
    local name="$1" parent="${PARENT[$1]}" args=()
    [ -n "${ARGS[$name]}" ] && args=(--build-arg "${ARGS[$name]}")
    [ -s "$HOST_CA" ] || { log "ERROR: no host CA bundle at $HOST_CA (RAGOPS_IMAGES_HOST_CA)"; return 1; }
    log "docker build ${TAG[$name]} (on ${TAG[$parent]}${ARGS[$name]:+, ${ARGS[$name]}})"
    dk build --network host --progress plain --secret "id=hostca,src=$HOST_CA" --build-arg "BASE=${TAG[$parent]}" \
        "${args[@]}" --label "ragops.image.key=${KEY[$name]}" -t "${TAG[$name]}" "$WORK/ctx/$name"
}

build_one() {
    local name="$1" t0 log_file="$DIR/logs/$1-${KEY[$1]}.log" ca
    t0=$(date +%s.%N)
    [ "$name" = debian ] || ensure_loaded "${PARENT[$name]}"
    if ! { if [ "$name" = debian ]; then build_debian; else build_image "$name"; fi; } >"$log_file" 2>&1; then
        tail -n 60 "$log_file" >&2
        die "building $name failed (full log: $log_file)"
    fi
    ca="$(ca_digest "${TAG[$name]}")"
    if [ "$name" = debian ]; then
        BASE_CA="$ca"
    else
        [ -n "${BASE_CA:-}" ] || { ensure_loaded debian; BASE_CA="$(ca_digest "${TAG[debian]}")"; }
        [ "$ca" = "$BASE_CA" ] || die "${TAG[$name]}: its CA bundle ($ca) is not the Debian base's ($BASE_CA): host CA leaked?"
    fi
    local build_s id size tmp
    build_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    id="$(dk image inspect -f '{{.Id}}' "${TAG[$name]}")"
    size="$(dk image inspect -f '{{.Size}}' "${TAG[$name]}")"
    tmp="$DIR/.$name-${KEY[$name]}.tar.tmp"
    dk save -o "$tmp" "${TAG[$name]}"
    mv "$tmp" "$(tar_of "$name")"
    cat >"$(meta_of "$name").tmp" <<EOF
{"name": "$name", "tag": "${TAG[$name]}", "key": "${KEY[$name]}", "id": "$id", "size": $size,
 "tar_bytes": $(stat -c %s "$(tar_of "$name")"), "build_s": $build_s, "built": "$(date -u +%FT%TZ)",
 "parent": "${PARENT[$name]:+${TAG[${PARENT[$name]}]}}", "args": "${ARGS[$name]}", "ca_sha256": "$ca",
 "engine": "$(dk version -f '{{.Server.Version}}')"}
EOF
    mv "$(meta_of "$name").tmp" "$(meta_of "$name")"
    log "built ${TAG[$name]} in ${build_s%.*} s: $((size / 1000000)) MB ($(basename "$(tar_of "$name")"))"
}

prune_old() {  # keep the two newest keys of each image
    local name old
    for name in "${ALL[@]}"; do
        # shellcheck disable=SC2012
        for old in $(ls -t "$DIR/$name"-*.json 2>/dev/null | tail -n +3); do
            [ "$old" = "$(meta_of "$name")" ] && continue
            log "removing the old cache entry $(basename "${old%.json}")"
            rm -f "$old" "${old%.json}.tar" "$DIR/logs/$(basename "${old%.json}").log"
        done
    done
}

# --- main -----------------------------------------------------------------------------------
[ "$PRINT" = 1 ] || ensure_venv
[ -x "$VENV_PY" ] || die "$VENV_PY missing: run scripts/setup.sh"
CHROMADB_VERSION="$(venv_version chromadb)" || die "chromadb is not installed in $ROOT/.venv"
REDIS_PY_VERSION="$(venv_version redis)" || die "redis (redis-py) is not installed in $ROOT/.venv"
make_contexts
compute_keys
if [ "$PRINT" = 1 ]; then
    print_json
    exit 0
fi

# what to build: the wanted images and, when one of them must be built, its missing ancestors
declare -A NEED=()
for name in "${WANT[@]}"; do
    n="$name"
    while [ -n "$n" ] && ! cached "$n"; do
        NEED[$n]=1
        n="${PARENT[$n]:-}"
    done
done
if ((${#NEED[@]} == 0)); then
    log "cached in $DIR: $(for n in "${WANT[@]}"; do printf '%s ' "${TAG[$n]}"; done)"
    exit 0
fi

mkdir -p "$DIR/logs"
exec 9>"$DIR/.build.lock"
if ! flock -n 9; then
    log "another build holds $DIR/.build.lock; waiting for it"
    flock 9
fi
# the chromadb version the server image gets, read the way the project itself sees it
seen="$("$VENV_PY" -c 'import chromadb; print(chromadb.__version__)')"
[ "$seen" = "$CHROMADB_VERSION" ] || die "chromadb.__version__ $seen != installed metadata $CHROMADB_VERSION"

T0=$(date +%s)
for name in "${ALL[@]}"; do
    [ -n "${NEED[$name]:-}" ] || continue
    if cached "$name"; then log "${TAG[$name]} was built meanwhile"; continue; fi
    [ -n "$ENGINE" ] || start_engine
    build_one "$name"
done
stop_engine
prune_old
log "done in $(($(date +%s) - T0)) s: $(for n in "${WANT[@]}"; do printf '%s ' "${TAG[$n]}"; done)"
