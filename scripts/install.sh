#!/usr/bin/env bash
# Set up this machine for fuxi: Debian packages the test suite and the devcloud
# need, then a virtualenv with fuxi installed in editable mode (plus the test
# extras).  Idempotent: a second run installs nothing and takes about a second.
#
# Environment:
#   FUXI_VENV        virtualenv path (default: <repo>/.venv)
#   FUXI_FORCE_PIP=1 re-run pip even when setup.py has not changed
#   FUXI_SKIP_APT=1  do not touch Debian packages (e.g. not root)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FUXI_VENV:-$REPO/.venv}"
PYTHON="${FUXI_PYTHON:-python3}"

# Debian packages:
#   docker.io       dockerd 20.10 + containerd + runc (+ /usr/bin/docker client) for e2e
#   systemd         systemd-analyze and systemd-socket-activate, to check the units and socket activation
#   busybox-static  the static busybox the e2e image is built from
#   xfsprogs e2fsprogs util-linux mount   mkfs/blkid/resize/losetup/mount
#   udev            udevd + udevadm for /dev/disk/by-* links
#   iptables        dockerd needs it for its default bridge (a docker.io dependency anyway)
#   procps          pgrep, used by docker-up.sh
#   iproute2        ip netns for the GlusterFS server's namespace
#   glusterfs-* ceph-*  the shares tier's real file servers and FUSE clients (contrib/shares)
#   rabbitmq-server the real-cloud tier's message bus (contrib/realcloud)
#   mariadb-server  the real-cloud tier's database for Manila (a private mariadbd, not the service)
APT_PACKAGES=(docker.io systemd busybox-static xfsprogs e2fsprogs util-linux mount udev iptables procps iproute2
              glusterfs-server glusterfs-client ceph-mon ceph-osd ceph-mds ceph-fuse ceph-common
              rabbitmq-server mariadb-server)

t0=$(date +%s.%N)
log() { printf 'install.sh: %s\n' "$*" >&2; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Serialise concurrent runs (test.sh and serve-devcloud.sh started together).
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/fuxi-install.lock"
    flock 9
fi

# ---------------------------------------------------------------- apt
pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

apt_install() {
    local missing=() p
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${missing[*]} (run as root, or install them yourself)"
        return 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Update the lists only when something has to be installed.  One retry with
    # fresh lists covers stale lists (404 on a superseded .deb).
    apt-get update -qq
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        log "apt-get install failed; refreshing lists and retrying"
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

ta=$(date +%s.%N)
if [ "${FUXI_SKIP_APT:-0}" != 1 ]; then
    apt_install "${APT_PACKAGES[@]}"
    # A python3 without venv/ensurepip (Debian's own python3) needs python3-venv.
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
fi
apt_s=$(elapsed "$ta")

# ---------------------------------------------------------------- venv
tv=$(date +%s.%N)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating virtualenv $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

# pip only when the packaging metadata (or the CSI proto, whose stubs the build
# generates) changed since the last successful install
# into this venv (or the editable install points at another checkout).
stamp_file="$VENV/.fuxi-install-stamp"
stamp="$(
    cd "$REPO"
    echo "repo=$REPO"
    for f in setup.py setup.cfg pyproject.toml fuxi_csi/proto/csi.proto; do
        [ -f "$f" ] && sha256sum "$f"
    done
    true
)"
if [ "${FUXI_FORCE_PIP:-0}" = 1 ] || [ ! -f "$stamp_file" ] \
    || [ "$(cat "$stamp_file")" != "$stamp" ] || [ ! -x "$VENV/bin/fuxi-server" ] \
    || [ ! -f "$REPO/fuxi_csi/proto/csi_pb2_grpc.py" ]; then
    log "pip install -e '${REPO}[test,bench]' into $VENV"
    rm -f "$stamp_file"
    # pip's output goes to a log (this machine's pip config adds find-links that
    # warn on every package); it is shown only when pip fails.
    pip_log="$VENV/.fuxi-pip.log"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e "${REPO}[test,bench]" \
        >"$pip_log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$pip_log" | tail -n 60 >&2 || true
        log "pip install failed (full log: $pip_log)"
        exit 1
    fi
    printf '%s\n' "$stamp" >"$stamp_file"
else
    log "venv up to date ($VENV)"
fi
venv_s=$(elapsed "$tv")

log "done in $(elapsed "$t0") s (apt ${apt_s} s, venv+pip ${venv_s} s); venv: $VENV"
