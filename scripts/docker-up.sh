#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine and that the local image
# fuxi-busybox:latest exists (built from Debian's busybox-static, no registry).
#
#   - containerd, then dockerd (Debian docker.io, 20.10), each started with setsid
#     and left running; logs in $FUXI_DOCKER_LOG_DIR (default /var/log, else /tmp)
#   - nothing is started if `docker info` already answers
#   - dockerd runs with live-restore: containers keep running while dockerd
#     restarts (tests/e2e/test_docker_restart.py restarts it under running
#     containers); left to /etc/docker/daemon.json when that file sets it
#
# Environment:
#   FUXI_DOCKER           docker client (default /usr/bin/docker: the client that
#                         matches Debian's daemon; /usr/local/bin/docker is 28.x)
#   FUXI_DOCKER_WAIT      seconds to wait for each daemon (default 60)
#   FUXI_IMAGE            image name (default fuxi-busybox:latest)
set -euo pipefail

DOCKER="${FUXI_DOCKER:-/usr/bin/docker}"
WAIT="${FUXI_DOCKER_WAIT:-60}"
IMAGE="${FUXI_IMAGE:-fuxi-busybox:latest}"
CONTAINERD_SOCK=/run/containerd/containerd.sock
BUSYBOX="${FUXI_BUSYBOX:-/bin/busybox}"
DAEMON_JSON=/etc/docker/daemon.json

log() { printf 'docker-up.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

LOG_DIR="${FUXI_DOCKER_LOG_DIR:-/var/log}"
if ! { mkdir -p "$LOG_DIR" && [ -w "$LOG_DIR" ]; } 2>/dev/null; then
    LOG_DIR=/tmp
fi

[ -x "$DOCKER" ] || die "$DOCKER not found: run scripts/install.sh (Debian package docker.io)"

# Serialise concurrent runs: two dockerds on one /var/lib/docker would fight.
# The daemons are started with fd 9 closed, or they would hold the lock forever.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/fuxi-docker-up.lock"
    flock 9
fi

docker_answers() { "$DOCKER" info >/dev/null 2>&1; }

# A daemon of this name runs. Not pgrep: it counts a zombie, and a dockerd
# stopped a moment ago (a restart) may not have been reaped yet.
# shellcheck disable=SC2009
running() { ps -C "$1" -o stat= 2>/dev/null | grep -qv '^Z'; }

# wait_for SECONDS DESCRIPTION COMMAND... : poll COMMAND, fast at first.
wait_for() {
    local limit=$1 what=$2 start delay=0.05
    shift 2
    start=$(now)
    while ! "$@" >/dev/null 2>&1; do
        if awk -v a="$start" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
            return 1
        fi
        sleep "$delay"
        delay=$(awk -v d="$delay" 'BEGIN { d *= 2; if (d > 1) d = 1; print d }')
    done
    log "$what ready after $(elapsed "$start") s"
}

containerd_answers() {
    [ -S "$CONTAINERD_SOCK" ] && ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1
}

start_daemons() {
    local t0
    t0=$(now)
    if ! containerd_answers; then
        if running containerd; then
            log "containerd is running but not answering yet; waiting"
        else
            command -v containerd >/dev/null || die "containerd not found: run scripts/install.sh"
            log "starting containerd (log: $LOG_DIR/fuxi-containerd.log)"
            setsid containerd >>"$LOG_DIR/fuxi-containerd.log" 2>&1 </dev/null 9>&- &
        fi
        wait_for "$WAIT" containerd containerd_answers || {
            tail -n 30 "$LOG_DIR/fuxi-containerd.log" >&2 || true
            die "containerd did not answer within ${WAIT} s"
        }
    fi
    if running dockerd; then
        log "dockerd is running but not answering yet; waiting"
    else
        command -v dockerd >/dev/null || die "dockerd not found: run scripts/install.sh"
        local flags=(--containerd="$CONTAINERD_SOCK" --storage-driver=overlay2)
        # dockerd refuses a directive given both as a flag and in daemon.json.
        if ! grep -qs '"live-restore"' "$DAEMON_JSON"; then
            flags+=(--live-restore)
        fi
        log "starting dockerd ${flags[*]} (log: $LOG_DIR/fuxi-dockerd.log)"
        setsid dockerd "${flags[@]}" \
            >>"$LOG_DIR/fuxi-dockerd.log" 2>&1 </dev/null 9>&- &
    fi
    wait_for "$WAIT" dockerd docker_answers || {
        tail -n 30 "$LOG_DIR/fuxi-dockerd.log" >&2 || true
        die "dockerd did not answer 'docker info' within ${WAIT} s"
    }
    log "docker engine up in $(elapsed "$t0") s"
}

build_image() {
    local t0 tmp applet n=0
    t0=$(now)
    [ -x "$BUSYBOX" ] || die "$BUSYBOX not found: run scripts/install.sh (Debian package busybox-static)"
    if ldd "$BUSYBOX" >/dev/null 2>&1; then
        die "$BUSYBOX is dynamically linked; the image needs Debian's busybox-static"
    fi
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuxi-busybox.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    mkdir -p "$tmp/root/bin" "$tmp/root/etc" "$tmp/root/tmp" "$tmp/root/root"
    chmod 1777 "$tmp/root/tmp"
    cp "$BUSYBOX" "$tmp/root/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        [ "$applet" = busybox ] && continue
        ln -s busybox "$tmp/root/bin/$applet"
        n=$((n + 1))
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$tmp/root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/root/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$tmp/root" -cf "$tmp/rootfs.tar" .
    "$DOCKER" import -c 'ENV PATH=/bin' "$tmp/rootfs.tar" "$IMAGE" >/dev/null
    rm -rf "$tmp"
    trap - EXIT
    log "imported $IMAGE ($n applets) in $(elapsed "$t0") s"
}

if docker_answers; then
    log "docker engine already answers"
else
    start_daemons
fi

# The client must be able to talk to the daemon (a 28.x client against 20.10
# fails with "client version ... is too new").
server_version=$("$DOCKER" version --format '{{.Server.Version}}' 2>&1) \
    || die "$DOCKER cannot talk to the daemon: $server_version"
log "client $DOCKER, daemon $server_version"

if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image $IMAGE present"
else
    build_image
    out=$("$DOCKER" run --rm "$IMAGE" echo ok 2>&1) || die "smoke run of $IMAGE failed: $out"
    [ "$out" = ok ] || die "smoke run of $IMAGE printed '$out', expected 'ok'"
    log "smoke run of $IMAGE ok"
fi
