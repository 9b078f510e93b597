#!/usr/bin/env bash
# `podman run -d` wall time with --network none, a netsh network and the CNI
# project's bridge plugin, inside its own mount and PID namespaces (bench.py
# runs it in the bench sandbox). Prints "MODE MEDIAN-MS" lines.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'podman rm -fa -t 0 >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
NETSH=$ROOT/target/release/netsh RECIPES=$ROOT/recipes TESTDIR=$ROOT/tests/sh
export NETSH_STATE_DIR=$work/state
DB_GRANTS=$($NETSH inspect --json $RECIPES/docker-bridge.wasm |
  python3 -c 'import json,sys; print(" ".join("--allow " + g["grant"] for g in json.load(sys.stdin)["grants"]))')
source $TESTDIR/podman.sh
cat >/etc/cni/net.d/refnet.conflist <<CONF
{"cniVersion": "1.0.0", "name": "refnet", "plugins": [
  {"type": "bridge", "bridge": "cni-ref0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.94.0.0/24"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
CONF
$NETSH run --allow-all $RECIPES/docker-bridge.wasm -- create podnet --subnet 172.30.0.0/24 >/dev/null
# The same docker-bridge network, its calls answered by an agent.
$NETSH agent --agent-socket $work/agent.sock 2>/dev/null &
for _ in $(seq 100); do [ -S $work/agent.sock ] && break; sleep 0.05; done
sed -e 's/"name": "podnet"/"name": "podagent"/' -e 's|"type": "netsh",|"type": "netsh", "network": "podnet", "agentSocket": "'$work/agent.sock'",|' \
  /etc/cni/net.d/podnet.conflist >/etc/cni/net.d/podagent.conflist
runs=${PODMAN_RUNS:-10}
for network in none podnet podagent refnet; do
  times=()
  for i in $(seq $runs); do
    start=$(date +%s%N)
    podman run -d --network $network localhost/bb sleep 60 >/dev/null
    times+=($(( ($(date +%s%N) - start) / 1000 )))
  done
  podman rm -fa -t 0 >/dev/null
  printf '%s\n' "${times[@]}" | sort -n | awk -v n=$network '{a[NR]=$1} END {printf "%s %.1f\n", n, a[int((NR+1)/2)]/1000}'
done
