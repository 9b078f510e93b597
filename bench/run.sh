#!/usr/bin/env bash
# Benchmarks, in a throwaway network + mount namespace. Numbers, not assertions.
# Usage: bench/run.sh [all|calls|guard|shell|startup|netns-bridge|docker-bridge|curve|firewall|cni|agent|podman|dns|overlay]
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
source tests/sh/sandbox.sh "$self" "$@"
export NETSH_STATE_DIR=$(mktemp -d)
trap 'target/release/netsh dns stop >/dev/null 2>&1 || true; rm -rf "$NETSH_STATE_DIR"' EXIT
python3 bench/bench.py "${1:-all}" 2> >(grep -v "allow-all grants everything" >&2)
