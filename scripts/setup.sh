#!/usr/bin/env bash
# Idempotent developer/CI setup for ragops; fast when everything is already present.
#   1. apt packages listed in scripts/apt-packages.txt (only the missing ones)
#   2. every executable scripts/setup.d/*.sh, in lexical order
#   3. .venv with `pip install -e '.[dev]'` (re-run only when pyproject.toml changes)
#   4. /run/sshd (privilege-separation dir that sshd insists on)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export RAGOPS_ROOT="$ROOT"   # for scripts/setup.d hooks

log() { printf '[setup] %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

# --- 1. apt -------------------------------------------------------------------
missing=()
while IFS= read -r line || [ -n "$line" ]; do
    pkg="${line%%#*}"
    pkg="${pkg//[[:space:]]/}"
    [ -z "$pkg" ] && continue
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done < "$ROOT/scripts/apt-packages.txt"

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing apt packages: ${missing[*]}"
    "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}"
fi

# --- 2. component setup hooks -------------------------------------------------
# RAGOPS_SETUP_HOOKS=0 skips them (the demo needs none of the test-only engines).
if [ "${RAGOPS_SETUP_HOOKS:-1}" != "0" ] && [ -d "$ROOT/scripts/setup.d" ]; then
    for hook in "$ROOT"/scripts/setup.d/*.sh; do
        [ -e "$hook" ] || continue
        if [ -x "$hook" ]; then  # run from the repo root, with RAGOPS_ROOT set
            log "running ${hook#"$ROOT"/}"
            "$hook"
        fi
    done
fi

# --- 3. Python virtualenv -----------------------------------------------------
VENV="$ROOT/.venv"
STAMP="$VENV/.ragops-stamp"
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    rm -f "$STAMP"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    log "pip install -e '.[dev]'"
    # One resolver run on purpose: a later separate install can upgrade python-dateutil
    # past what botocore accepts.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev]"
    printf '%s\n' "$want" > "$STAMP"
fi

# --- 4. runtime dirs ----------------------------------------------------------
"${SUDO[@]}" mkdir -p /run/sshd

log "ok"
