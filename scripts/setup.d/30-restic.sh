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

# shellcheck source=scripts/lib/fetch-debs.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/fetch-debs.sh"

fetch_new_restic() {
    fetch_debs "$NEW_SUITE" "$NEW_DIR" usr/bin/restic restic || return 1
    log "newer restic ready: $("$NEW_DIR/usr/bin/restic" version)"
}

if ! fetch_new_restic; then
    log "WARNING: could not fetch the $NEW_SUITE restic; tests parametrized over restic 0.18 will be skipped"
fi
