#!/usr/bin/env bash
# README command #2: install what is needed, start the Docker engine, run every
# test tier.  Extra arguments go to pytest, e.g.
#   scripts/test.sh -k lifecycle          # still over tests/
#   scripts/test.sh tests/e2e -x          # a path replaces the default tests/
# Every tier must run: FUXI_REQUIRE_ALL_TIERS=1 turns a skipped test into a failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FUXI_VENV:-$REPO/.venv}"
export FUXI_VENV="$VENV"

bash "$REPO/scripts/install.sh"
bash "$REPO/scripts/docker-up.sh"

export FUXI_REQUIRE_ALL_TIERS=1
cd "$REPO"

# Run over tests/ unless a test path (file, directory or node id) was given.
targets=(tests)
for arg in "$@"; do
    case "$arg" in
        -*) ;;
        *) if [ -e "${arg%%::*}" ]; then targets=(); break; fi ;;
    esac
done

t0=$(date +%s)
set +e
"$VENV/bin/python" -m pytest "${targets[@]}" -v -p no:cacheprovider --durations=30 "$@"
rc=$?
set -e
echo "test.sh: pytest exited $rc after $(( $(date +%s) - t0 )) s" >&2
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit "$rc"
