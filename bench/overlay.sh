#!/usr/bin/env bash
# Overlay networks across two simulated hosts with etcd (bench.py runs it in
# the bench sandbox): propagation with the agents watching, etcd round trips
# per connect, and TCP throughput over VXLAN against the same transfer over
# the plain underlay and over one host's bridge. Prints the table.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
NETSH=$ROOT/target/release/netsh RECIPES=$ROOT/recipes
source "$ROOT/tests/sh/net.sh"
source "$ROOT/tests/sh/hosts.sh"
trap 'stop_servers; stop_hosts; rm -rf "$work"' EXIT
set -f
make_hosts 2
start_etcd
KV=etcd://192.168.50.100:2379
GRANTS=$($NETSH inspect --json "$RECIPES/overlay.wasm" |
  python3 -c 'import json,sys; print(" ".join("--allow " + g["grant"] for g in json.load(sys.stdin)["grants"]))')
OV() { local h=$1; shift; on "$h" "$NETSH" --kv "$KV" --agent-socket "$work/agent-$h.sock" run $GRANTS "$RECIPES/overlay.wasm" -- "$@"; }
OV h1 create bench --subnet 10.0.60.0/24 >/dev/null
OV h2 connect bench peer >/dev/null
# etcd requests of one connect on a host already on the network, and of one
# sync (gRPC calls etcd counts; before the agents start, so none are theirs).
grpc_calls() { ip netns exec kvstore python3 -c '
import urllib.request
text = urllib.request.urlopen("http://192.168.50.100:2379/metrics", timeout=3).read().decode()
print(int(sum(float(l.split()[-1]) for l in text.splitlines()
  if l.startswith("grpc_server_handled_total") and "etcdserverpb.KV" in l)))'; }
OV h1 connect bench warm >/dev/null; before=$(grpc_calls); OV h1 connect bench rt >/dev/null; after=$(grpc_calls)
connect_calls=$((after - before))
before=$(grpc_calls); OV h2 sync bench >/dev/null; after=$(grpc_calls)
sync_calls=$((after - before))

for h in h1 h2; do
  on $h "$NETSH" --kv "$KV" --agent-socket "$work/agent-$h.sock" agent \
    --sync "overlay/=run $GRANTS $RECIPES/overlay.wasm -- sync" >/dev/null 2>&1 &
  HOLDERS+=($!)
  for _ in $(seq 100); do [ -S "$work/agent-$h.sock" ] && break; sleep 0.05; done
done
now_ms() { date +%s%3N; }

# Propagation: connect on h1 (through its agent) until the peer on h2 gets a
# reply, which needs h2's agent to have added the FDB and neighbour entries.
N=${OVERLAY_CONNECTS:-50}
: >"$work/prop"
for i in $(seq "$N"); do
  start=$(now_ms)
  ip=$(OV h1 connect bench p$i | awk '{print $3}' | cut -d/ -f1)
  for _ in $(seq 200); do on h2 ip netns exec peer ping -c1 -W0.05 "$ip" >/dev/null 2>&1 && break; done
  echo $(( $(now_ms) - start )) >>"$work/prop"
  OV h1 disconnect bench p$i >/dev/null
  # The next connect reuses the address (and so the MAC): start it only once h2 forgot this one.
  for _ in $(seq 200); do on h2 ip neigh show "$ip" | grep -q PERMANENT || break; sleep 0.02; done
done
read p50 p99 < <(sort -n "$work/prop" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[int(NR*0.99+0.999)]}')

# Throughput: 256 MiB over one TCP connection, bounded to 60 s each.
SINK='import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 5201)); s.listen(1)
c,_=s.accept(); n=0
while True:
    d=c.recv(1<<20)
    if not d: break
    n+=len(d)
print(n)'
SEND='import socket,sys,time
s=socket.create_connection((sys.argv[1], 5201), timeout=10); buf=b"x"*(1<<20); t=time.perf_counter()
for _ in range(256): s.sendall(buf)
s.shutdown(socket.SHUT_WR); s.recv(1); print("%.0f" % (256*8/(time.perf_counter()-t)))'
# rate SERVER-PREFIX CLIENT-PREFIX ADDR: Mbit/s; each prefix is a command that runs python3 there.
rate() {
  local server=$1 client=$2 addr=$3
  $server timeout 60 python3 -c "$SINK" >/dev/null & local sink=$!
  sleep 0.3
  $client timeout 60 python3 -c "$SEND" "$addr"
  wait $sink || true
}
peer_ip=$(ETCDCTL_API=3 etcdctl --endpoints http://192.168.50.100:2379 get overlay/ep/bench/peer --print-value-only | grep -o 'ip=[0-9.]*' | cut -d= -f2)
overlay=$(rate "on h2 ip netns exec peer" "on h1 ip netns exec rt" "$peer_ip")
underlay=$(rate "on h2" "on h1" 192.168.50.12)
on h1 ip netns add b1; on h1 ip netns add b2
on h1 ip link add lb type bridge; on h1 ip link set lb up
for n in 1 2; do
  on h1 ip link add lb$n type veth peer name eth0 netns b$n
  on h1 ip link set lb$n master lb up
  on h1 ip -n b$n addr add 10.77.0.$n/24 dev eth0; on h1 ip -n b$n link set eth0 up
done
bridge=$(rate "on h1 ip netns exec b2" "on h1 ip netns exec b1" 10.77.0.2)
on h1 ip netns del b1; on h1 ip netns del b2; on h1 ip link del lb

echo "  propagation, connect on h1 until the peer on h2 pings it (agents watching etcd), $N connects:"
echo "    p50 ${p50} ms, p99 ${p99} ms"
echo "  etcd KV requests: ${connect_calls} for one connect on a host already on the network, ${sync_calls} for one sync"
printf "  %-44s %10s\n" "TCP, 256 MiB in one connection" "Mbit/s"
printf "  %-44s %10s\n" "container h1 -> container h2 (VXLAN overlay)" "$overlay"
printf "  %-44s %10s\n" "host h1 -> host h2 (plain underlay)" "$underlay"
printf "  %-44s %10s\n" "namespace -> namespace on one bridge (h1)" "$bridge"
OV h1 rm bench --force >/dev/null
