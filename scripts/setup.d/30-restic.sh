#!/usr/bin/env bash
# restic test prerequisites (run as root by scripts/setup.sh; idempotent, fast when present).
#
#  1. Debian bookworm's `restic` (0.14) comes from scripts/apt-packages.txt.
#  2. Optionally Debian trixie's restic 0.18 (its .deb needs only libc6 >= 2.34), unpacked into a
#     machine cache dir ($RAGOPS_RESTIC_NEW_DIR, default /var/cache/ragops/restic-0.18) with
#     `apt-get download` against a private sources list and private apt state/cache dirs under a
#     temp dir, then `dpkg-deb -x`: nothing in /etc is touched. Set RAGOPS_RESTIC_NEW=0 to skip.
#     A failure here only warns (the tests parametrized over restic 0.18 are then skipped).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=300 -q)
NEW_DIR="${RAGOPS_RESTIC_NEW_DIR:-/var/cache/ragops/restic-0.18}"
NEW_SUITE="${RAGOPS_RESTIC_NEW_SUITE:-trixie}"

log() { echo "[30-restic] $*"; }

command -v restic >/dev/null || log "WARNING: restic not installed (scripts/apt-packages.txt installs it)"

if [ "${RAGOPS_RESTIC_NEW:-1}" = "0" ]; then
    log "RAGOPS_RESTIC_NEW=0: skipping the newer restic"
    exit 0
fi
if [ -f "$NEW_DIR/.complete" ] && [ -x "$NEW_DIR/usr/bin/restic" ]; then
    log "newer restic present in $NEW_DIR ($(tr '\n' ' ' <"$NEW_DIR/.complete"))"
    exit 0
fi

fetch_new_restic() {
    local tmp
    tmp="$(mktemp -d /tmp/ragops-apt-XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'; trap - RETURN" RETURN
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs" "$tmp/root"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $NEW_SUITE main" \
        >"$tmp/sources.list"
    local opts=(
        -o "Dir::Etc::SourceList=$tmp/sources.list"
        -o "Dir::Etc::SourceParts=-"
        -o "Dir::State::Lists=$tmp/lists"
        -o "Dir::Cache=$tmp/cache"
        -o "Dir::Cache::pkgcache="
        -o "Dir::Cache::srcpkgcache="
        -o "APT::Get::List-Cleanup=0"
    )
    log "fetching $NEW_SUITE restic into $NEW_DIR"
    "${APT[@]}" "${opts[@]}" update >"$tmp/update.log" 2>&1 \
        || { cat "$tmp/update.log"; return 1; }
    (cd "$tmp/debs" && "${APT[@]}" "${opts[@]}" -o APT::Sandbox::User=root download restic) || return 1
    local deb
    for deb in "$tmp"/debs/*.deb; do
        dpkg-deb -x "$deb" "$tmp/root" || return 1
        echo "$(dpkg-deb -f "$deb" Package)=$(dpkg-deb -f "$deb" Version)" >>"$tmp/root/.versions" || return 1
    done
    [ -x "$tmp/root/usr/bin/restic" ] || { log "no restic binary in the $NEW_SUITE package"; return 1; }
    "$tmp/root/usr/bin/restic" version >/dev/null || return 1
    mkdir -p "$(dirname "$NEW_DIR")" && rm -rf "$NEW_DIR.tmp" && mv "$tmp/root" "$NEW_DIR.tmp" \
        && mv "$NEW_DIR.tmp/.versions" "$NEW_DIR.tmp/.complete" \
        && rm -rf "$NEW_DIR" && mv "$NEW_DIR.tmp" "$NEW_DIR" || return 1
    log "newer restic ready: $("$NEW_DIR/usr/bin/restic" version)"
}

if ! fetch_new_restic; then
    log "WARNING: could not fetch the $NEW_SUITE restic; tests parametrized over restic 0.18 will be skipped"
fi
