#!/usr/bin/env bash
# The main job, end to end, in a throwaway network + mount namespace: a
# Docker-style network with two containers and a published port, then real
# traffic between them, to a simulated outside host, and to the published port.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
source tests/sh/sandbox.sh "$self" "$@"
source tests/sh/net.sh
# The DNS resolver the network starts would outlive the sandbox: stop it too.
trap 'stop_servers; ./target/release/netsh dns stop >/dev/null 2>&1 || true' EXIT

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
export NETSH_STATE_DIR=$(mktemp -d)   # this demo's audit log and journals
# Exactly the grants docker-bridge asks for (see `netsh inspect recipes/docker-bridge.wasm`).
GRANTS=(--allow 'link:br-*' --allow 'link:veth*' --allow 'link:*/eth*' --allow 'link:*/lo' --allow 'netns:*'
        --allow addr:172.16.0.0/12 --allow route:0.0.0.0/0 --allow nat:172.16.0.0/12 --allow publish:tcp/1-65535
        --allow sysctl:net.ipv4.ip_forward --allow 'sysctl:net.ipv4.conf.*.route_localnet' --allow 'kv:docker-bridge/*' --allow 'kv:netsh/dns/*')
DB=(./target/release/netsh run "${GRANTS[@]}" recipes/docker-bridge.wasm --)
db() { printf '\n\033[1m$ netsh run $GRANTS recipes/docker-bridge.wasm -- %s\033[0m\n' "$*"; "${DB[@]}" "$@"; }

echo "(sandbox: a private network namespace; 'outside' plays the internet at 10.200.0.2)"
make_outside
db create mynet --subnet 172.25.0.0/16
db connect mynet web --publish 8080:80 --alias www
db connect mynet client
db ls
say ./target/release/netsh show -n web

serve web 80
serve outside 7000
echo
echo "container -> container:   $(ip netns exec client ping -c1 -W2 www >/dev/null && echo 'client pinged www (web) by name')"
echo "container DNS:             www is $(nsenter --net=/run/netns/client dig +short +tries=3 @172.25.0.1 www)   (netsh's resolver on the gateway, no /etc files)"
echo "container -> outside:     $(fetch client 10.200.0.2 7000)   (MASQUERADE: the host's uplink address)"
echo "outside -> published:     $(fetch outside 10.200.0.1 8080)"
echo "host 127.0.0.1:8080 ->    $(fetch - 127.0.0.1 8080)"
stop_servers
say ./target/release/netsh dns status

db disconnect mynet client
db rm mynet --force
say ./target/release/netsh runs
say ./target/release/netsh audit verify
rm -rf "$NETSH_STATE_DIR"
echo
echo "Done; the sandbox disappears with this process."
