#!/usr/bin/env bash
# Kubernetes test prerequisites (run as root by scripts/setup.sh; idempotent, fast when present).
#
# No package ships kube-apiserver, so it is built ONCE PER MACHINE from Debian bookworm's `kubernetes`
# source package (1.20.2, full vendor tree) into a machine cache ($RAGOPS_KUBE_DIR, default
# /var/cache/ragops/kube-1.20):
#
#   bin/kube-apiserver, bin/kube-controller-manager   built here (~11 min on 2 cores, 2.8 GB disk)
#   bin/etcd, bin/etcdctl                               Debian `etcd-server`/`etcd-client` 3.4
#   bin/kubectl                                         Debian `kubernetes-client` 1.20 (its kubectl
#                                                       can `create job --from=cronjob/x` on a 1.20
#                                                       server, kubectl >= 1.2x cannot)
#   .complete                                           written last; its presence means "control
#                                                       plane done"
#   bin/kubelet, bin/kube-scheduler                     built here too, in a SECOND stage with its own
#                                                       marker (cold: 785 s measured on 2 busy cores)
#   .kubelet-complete                                   written last by that stage
#
# The build tree and go cache live in a temp dir that is deleted afterwards (2.8 GB), so each stage
# fetches and unpacks the source again; a machine that has the control plane already only builds
# the kubelet stage (kube-apiserver/controller-manager are never rebuilt while .complete exists).
#
# The kubelet is patched for these VMs: they drop CAP_SYS_RESOURCE, so nobody can LOWER
# oom_score_adj, and 1.20's dockershim sets -998 on every pod sandbox (runc then fails with "can't
# get final child's PID from pipe: EOF"), as does the Guaranteed QoS class. Both constants
# (defaultSandboxOOMAdj in pkg/kubelet/dockershim/docker_sandbox.go, guaranteedOOMScoreAdj in
# pkg/kubelet/qos/policy.go) are set to 0. A third patch keeps the test kubelet from changing the
# shared machine's sysctls: upstream 1.20 either rewrites vm.overcommit_memory, kernel.panic and
# kernel.panic_on_oops (KernelTunableModify) or refuses to start (--protect-kernel-defaults); the
# patched one only logs them (KernelTunableWarn in pkg/kubelet/cm/container_manager_linux.go).
# The build fails if any patch does not apply.
#
# Everything is fetched with `apt-get download` / `apt-get source --download-only` against a private
# sources list and private apt state/cache dirs under a temp dir, then unpacked with `dpkg-deb -x` /
# `dpkg-source -x`: nothing in /etc is touched and no daemon is installed or started.
# The build uses Debian's golang-1.19 (unpacked, not installed), GOPROXY=off, and replaces
# vendor/github.com/modern-go/reflect2 with Debian's reflect2 1.0.2 (the vendored copy crashes the
# apiserver on the first custom resource under go 1.19).
#
# Long: run it in the background while doing something else, e.g.
#   nohup bash scripts/setup.d/50-kube.sh > /tmp/kube-build.log 2>&1 &
#
# A failed build does not stop scripts/setup.sh (the offline tier must still run): it is reported
# loudly here, and the real-API-server tests then FAIL (never skip) naming the missing binaries.
# RAGOPS_KUBE_STRICT=1 makes a failed build fail this script too.
set -euo pipefail

if [ -z "${_RAGOPS_KUBE_INNER:-}" ]; then
    if _RAGOPS_KUBE_INNER=1 bash "${BASH_SOURCE[0]}" "$@"; then
        exit 0
    fi
    echo "[50-kube] ERROR: building the Kubernetes 1.20 test binaries FAILED (see above);" \
        "the real-API-server tests in tests/k8s will fail until it succeeds" >&2
    [ "${RAGOPS_KUBE_STRICT:-0}" = "1" ] && exit 1
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=300 -q)
KUBE_DIR="${RAGOPS_KUBE_DIR:-/var/cache/ragops/kube-1.20}"
SUITE="${RAGOPS_KUBE_SUITE:-bookworm}"
GO_PKGS=(golang-1.19-go golang-1.19-src golang-github-modern-go-reflect2-dev)
BIN_PKGS=(etcd-server etcd-client kubernetes-client)

log() { echo "[50-kube] $(date +%H:%M:%S) $*"; }

control_plane_done() {
    [ -f "$KUBE_DIR/.complete" ] && [ -x "$KUBE_DIR/bin/kube-apiserver" ] \
        && [ -x "$KUBE_DIR/bin/kube-controller-manager" ] && [ -x "$KUBE_DIR/bin/etcd" ] \
        && [ -x "$KUBE_DIR/bin/kubectl" ]
}
kubelet_done() {
    [ -f "$KUBE_DIR/.kubelet-complete" ] && [ -x "$KUBE_DIR/bin/kubelet" ] \
        && [ -x "$KUBE_DIR/bin/kube-scheduler" ]
}

if control_plane_done && kubelet_done; then
    log "kube 1.20 binaries present in $KUBE_DIR/bin (control plane + kubelet)"
    exit 0
fi

# build tools (make, rsync) from the ordinary bookworm archive
missing=()
for pkg in make rsync dpkg-dev; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    "${APT[@]}" update
    "${APT[@]}" install -y --no-install-recommends "${missing[@]}"
fi

LOCK="$(dirname "$KUBE_DIR")/.kube-build.lock"
mkdir -p "$(dirname "$KUBE_DIR")"
exec 9>"$LOCK"
if ! flock -n 9; then
    log "another build holds $LOCK; waiting for it"
    flock 9
    if control_plane_done && kubelet_done; then log "built by the other run"; exit 0; fi
fi
# what this run builds: the control plane only if it is not cached yet, the kubelet stage likewise
WANT_CP=1 WANT_KUBELET=1
control_plane_done && WANT_CP=0
kubelet_done && WANT_KUBELET=0

TMP="$(mktemp -d "${RAGOPS_KUBE_TMP:-/var/tmp}/ragops-kube-XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/lists/partial" "$TMP/cache/archives/partial" "$TMP/debs" "$TMP/src" "$TMP/root"
cat >"$TMP/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $SUITE main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $SUITE main
EOF
APT_OPTS=(
    -o "Dir::Etc::SourceList=$TMP/sources.list"
    -o "Dir::Etc::SourceParts=-"
    -o "Dir::State::Lists=$TMP/lists"
    -o "Dir::Cache=$TMP/cache"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "APT::Get::List-Cleanup=0"
    -o "APT::Sandbox::User=root"
)

log "private apt update ($SUITE main, deb + deb-src)"
"${APT[@]}" "${APT_OPTS[@]}" update >"$TMP/update.log" 2>&1 || { cat "$TMP/update.log"; exit 1; }

PKGS=("${GO_PKGS[@]}")
[ "$WANT_CP" = 1 ] && PKGS+=("${BIN_PKGS[@]}")
log "downloading ${PKGS[*]}"
(cd "$TMP/debs" && "${APT[@]}" "${APT_OPTS[@]}" download "${PKGS[@]}")
for deb in "$TMP"/debs/*.deb; do
    dpkg-deb -x "$deb" "$TMP/root"
    echo "$(dpkg-deb -f "$deb" Package)=$(dpkg-deb -f "$deb" Version)" >>"$TMP/versions"
done

log "downloading the kubernetes source package"
(cd "$TMP/src" && "${APT[@]}" "${APT_OPTS[@]}" source --download-only kubernetes)
dsc="$(ls "$TMP"/src/kubernetes_*.dsc | head -n1)"
echo "kubernetes-source=$(basename "$dsc" .dsc)" >>"$TMP/versions"
(cd "$TMP/src" && dpkg-source --no-check -x "$dsc" kubernetes >/dev/null)
K="$TMP/src/kubernetes"

log "replacing vendor/github.com/modern-go/reflect2 with Debian's reflect2 1.0.2"
R2="$TMP/root/usr/share/gocode/src/github.com/modern-go/reflect2"
[ -d "$R2" ] || { log "ERROR: reflect2 sources not found at $R2"; exit 1; }
rm -rf "$K/vendor/github.com/modern-go/reflect2"
cp -r "$R2" "$K/vendor/github.com/modern-go/reflect2"
# vendor/modules.txt and go.mod (require + replace) must name the version that is now vendored
sed -i -E 's#(github.com/modern-go/reflect2) v[0-9][^ ]*#\1 v1.0.2#g' "$K/vendor/modules.txt" "$K/go.mod"
# go.sum is not consulted with -mod=vendor, but keep it consistent
sed -i '/github.com\/modern-go\/reflect2 /d' "$K/go.sum"

# kubelet patches (see the header): fail loudly if the source no longer looks as expected
patch_const() {  # file name: set `name int = -NNN` to 0
    local file="$K/$1" name="$2"
    grep -Eq "^\s*$name\s+int\s*=\s*-[0-9]+" "$file" \
        || { log "ERROR: $name not found as a negative int constant in $1"; exit 1; }
    sed -i -E "s/^(\s*$name\s+int\s*=\s*)-[0-9]+/\10/" "$file"
    grep -Eq "^\s*$name\s+int\s*=\s*0\b" "$file" || { log "ERROR: patching $name in $1 failed"; exit 1; }
    log "patched $name = 0 in $1"
}
if [ "$WANT_KUBELET" = 1 ]; then
    patch_const pkg/kubelet/dockershim/docker_sandbox.go defaultSandboxOOMAdj
    patch_const pkg/kubelet/qos/policy.go guaranteedOOMScoreAdj
    CM="$K/pkg/kubelet/cm/container_manager_linux.go"
    [ "$(grep -c '^\s*b := KernelTunableModify$' "$CM")" = 1 ] \
        || { log "ERROR: 'b := KernelTunableModify' not found once in ${CM#"$K"/}"; exit 1; }
    sed -i -E 's/^(\s*b := )KernelTunableModify$/\1KernelTunableWarn/' "$CM"
    log "patched setupNode to KernelTunableWarn in ${CM#"$K"/}"
fi

TARGETS=()
[ "$WANT_CP" = 1 ] && TARGETS+=(cmd/kube-apiserver cmd/kube-controller-manager)
[ "$WANT_KUBELET" = 1 ] && TARGETS+=(cmd/kubelet cmd/kube-scheduler)

GOROOT_DIR="$TMP/root/usr/lib/go-1.19"
[ -x "$GOROOT_DIR/bin/go" ] || { log "ERROR: go 1.19 not found at $GOROOT_DIR"; exit 1; }
log "building ${TARGETS[*]} with $("$GOROOT_DIR/bin/go" version)"
start=$SECONDS
(
    cd "$K"
    export GOROOT="$GOROOT_DIR" PATH="$GOROOT_DIR/bin:$PATH"
    export GOPROXY=off GOFLAGS=-mod=vendor GOTOOLCHAIN=local CGO_ENABLED=0
    export GOCACHE="$TMP/gocache" GOPATH="$TMP/gopath" HOME="$TMP"
    export KUBE_GIT_VERSION="v1.20.2" KUBE_GIT_TREE_STATE=clean
    make WHAT="${TARGETS[*]}"
) >"$TMP/build.log" 2>&1 || { tail -n 60 "$TMP/build.log"; log "ERROR: build of ${TARGETS[*]} failed"; exit 1; }
log "built in $((SECONDS - start)) s"

built() {  # the path of a built binary, or fail
    local path
    path="$(find "$K/_output" -type f -name "$1" -perm -u+x | head -n1)"
    [ -n "$path" ] || { tail -n 40 "$TMP/build.log"; log "ERROR: no $1 produced"; exit 1; }
    echo "$path"
}

if [ "$WANT_CP" = 1 ]; then
    STAGE="$KUBE_DIR.tmp"
    rm -rf "$STAGE" && mkdir -p "$STAGE/bin"
    api_bin="$(built kube-apiserver)"
    kcm_bin="$(built kube-controller-manager)"
    cp "$api_bin" "$kcm_bin" "$STAGE/bin/"
    cp "$TMP/root/usr/bin/etcd" "$TMP/root/usr/bin/etcdctl" "$STAGE/bin/" 2>/dev/null \
        || cp "$(find "$TMP/root" -type f -name etcd | head -n1)" "$STAGE/bin/etcd"
    cp "$TMP/root/usr/bin/kubectl" "$STAGE/bin/kubectl"
    "$STAGE/bin/kube-apiserver" --version
    "$STAGE/bin/etcd" --version | head -n1
    "$STAGE/bin/kubectl" version --client 2>/dev/null | head -n1 || true
    cp "$TMP/versions" "$STAGE/.complete"
    rm -rf "$KUBE_DIR" && mv "$STAGE" "$KUBE_DIR"
    log "control plane done: $KUBE_DIR/bin ($(tr '\n' ' ' <"$KUBE_DIR/.complete"))"
fi

if [ "$WANT_KUBELET" = 1 ]; then
    for name in kubelet kube-scheduler; do
        bin_path="$(built "$name")"
        cp "$bin_path" "$KUBE_DIR/bin/$name.tmp"
        "$KUBE_DIR/bin/$name.tmp" --version
        mv -f "$KUBE_DIR/bin/$name.tmp" "$KUBE_DIR/bin/$name"
    done
    { cat "$TMP/versions"; echo "kubelet-patches=defaultSandboxOOMAdj=0,guaranteedOOMScoreAdj=0,KernelTunableWarn"; } \
        >"$KUBE_DIR/.kubelet-complete.tmp"
    mv -f "$KUBE_DIR/.kubelet-complete.tmp" "$KUBE_DIR/.kubelet-complete"
    log "kubelet stage done: $KUBE_DIR/bin/kubelet, $KUBE_DIR/bin/kube-scheduler"
fi
