# Sourced by scripts/setup.d/*.sh: unpack packages of another Debian suite into a private dir.
#
#   fetch_debs SUITE DEST CHECK_BIN PKG...
#
# `apt-get download` against a private sources list with private apt state/cache dirs under a
# temp dir, `dpkg-deb -x` of every .deb into one root, CHECK_BIN (relative to it) must run with
# --version/version, then the root replaces DEST in one rename; DEST/.complete lists the
# package versions. Nothing in /etc is touched. Returns non-zero on any failure (callers warn).
# Needs: APT (array, apt-get with options) and log() from the caller.

fetch_debs() {
    local suite="$1" dest="$2" check="$3"
    shift 3
    local tmp
    tmp="$(mktemp -d /tmp/ragops-apt-XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'; trap - RETURN" RETURN
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs" "$tmp/root"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
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
    log "fetching $suite $* into $dest"
    "${APT[@]}" "${opts[@]}" update >"$tmp/update.log" 2>&1 || { cat "$tmp/update.log"; return 1; }
    # (set -e does not apply inside a function called from `if`: check every step)
    (cd "$tmp/debs" && "${APT[@]}" "${opts[@]}" -o APT::Sandbox::User=root download "$@") || return 1
    local deb
    for deb in "$tmp"/debs/*.deb; do
        dpkg-deb -x "$deb" "$tmp/root" || return 1
        echo "$(dpkg-deb -f "$deb" Package)=$(dpkg-deb -f "$deb" Version)" >>"$tmp/root/.versions" || return 1
    done
    [ -x "$tmp/root/$check" ] || { log "no $check in the $suite packages"; return 1; }
    "$tmp/root/$check" --version >/dev/null 2>&1 || "$tmp/root/$check" version >/dev/null || return 1
    mkdir -p "$(dirname "$dest")" && rm -rf "$dest.tmp" && mv "$tmp/root" "$dest.tmp" \
        && mv "$dest.tmp/.versions" "$dest.tmp/.complete" \
        && rm -rf "$dest" && mv "$dest.tmp" "$dest" || return 1
}
