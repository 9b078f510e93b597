#!/usr/bin/env bash
# Benchmarks, in a throwaway network + mount namespace. Numbers, not assertions.
# Usage: bench/run.sh [all|calls|guard|shell|startup|netns-bridge|docker-bridge]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${NETSH_BENCH_INNER:-}" != 1 ]; then
  exec env NETSH_BENCH_INNER=1 unshare --net --mount --propagation private -- "$0" "$@"
fi
mkdir -p /run/netns /etc/netns
mount -t tmpfs tmpfs /run/netns
mount -t tmpfs tmpfs /etc/netns
ip link set lo up
export NETSH_STATE_DIR=$(mktemp -d)
trap 'rm -rf "$NETSH_STATE_DIR"' EXIT
python3 bench/bench.py "${1:-all}" 2> >(grep -v "allow-all grants everything" >&2)
