#!/usr/bin/env bash
# README command #1: install what is needed, make sure a Docker engine runs, then
# serve fuxi on the embedded devcloud (an OpenStack-compatible cloud made of
# sparse files and loop devices) in the foreground.
#
#   scripts/serve-devcloud.sh [fuxi-server options...]
#
# fuxi-server's defaults apply: socket /run/docker/plugins/fuxi.sock, state dir
# /var/lib/fuxi (override with --socket PATH / --state-dir PATH).  Then, in
# another shell:
#   docker volume create -d fuxi -o size=1 v1
#   docker run --rm -v v1:/data fuxi-busybox sh -c 'echo hi > /data/f'
#
# FUXI_SKIP_DOCKER=1 skips starting dockerd (scripts/docker-up.sh).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FUXI_VENV:-$REPO/.venv}"
export FUXI_VENV="$VENV"

bash "$REPO/scripts/install.sh"
if [ "${FUXI_SKIP_DOCKER:-0}" != 1 ]; then
    bash "$REPO/scripts/docker-up.sh"
fi

echo "serve-devcloud.sh: starting fuxi-server --devcloud $* (Ctrl-C stops it)" >&2
exec "$VENV/bin/fuxi-server" --devcloud "$@"
