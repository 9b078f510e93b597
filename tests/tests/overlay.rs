//! The overlay recipe across simulated hosts: each host a network namespace
//! with its own mount namespace, /run/netns and netsh state, all on one
//! underlay bridge, with etcd in a namespace of its own as the shared store.

use netsh_e2e::{Outcome, sandboxed};

/// Three hosts, etcd, an outside namespace behind the underlay's router,
/// and `OV HOST ARGS...` running the overlay recipe on a host.
const HOSTS: &str = r#"
source "$TESTDIR/hosts.sh"
trap 'stop_servers; stop_hosts; "$NETSH" dns stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
make_hosts 3
start_etcd
make_outside
ip -n outside route add 192.168.50.0/24 via 10.200.0.1
KV=etcd://192.168.50.100:2379
OV_GRANTS=$(grants_of "$RECIPES/overlay.wasm")
OV() { local h=$1; shift; on "$h" "$NETSH" --kv "$KV" run $OV_GRANTS "$RECIPES/overlay.wasm" -- "$@"; }
store() { ETCDCTL_API=3 etcdctl --endpoints http://192.168.50.100:2379 get --prefix "" --keys-only | grep . || true; }
host_state() { on "$1" bash -c 'ip -o link | sed -E "s/^[0-9]+: //; s/ state [A-Z]+//"; ip netns list; ip route; nft list ruleset'; }
# Count VXLAN packets crossing the underlay switch.
nft add table bridge underlay
nft add chain bridge underlay count '{ type filter hook forward priority 0; }'
nft add rule bridge underlay count udp dport 4789 counter
vxlan_packets() { nft list chain bridge underlay count | grep -o 'packets [0-9]*' | cut -d' ' -f2; }
"#;

/// Run `script` after [`HOSTS`] in a sandbox, bounded to `limit_secs`.
fn on_hosts(script: &str, limit_secs: u32) -> Outcome {
    sandboxed(&format!("{HOSTS}{script}"), limit_secs)
}

#[test]
fn containers_on_three_hosts_share_one_network_over_vxlan() {
    on_hosts(
        r#"
clean_h2=$(host_state h2)
OV h1 create multi --subnet 10.0.9.0/24
# Three containers per host, all connecting at once.
connects=()
for h in h1 h2 h3; do for c in a b c; do OV $h connect multi $c-$h >"$work/$c-$h.out" 2>&1 & connects+=($!); done; done
failed=0; for p in "${connects[@]}"; do wait "$p" || failed=1; done
set +f  # the outputs' names
[ $failed = 0 ] || { cat "$work"/*.out; exit 1; }
addrs=$(cat "$work"/*-h?.out | grep -o '10\.0\.9\.[0-9]*/24' | sort)
set -f
echo "addresses: $(echo "$addrs" | wc -l) taken, $(echo "$addrs" | uniq | wc -l) distinct"
OV h1 connect multi web --alias www
for h in h1 h2 h3; do OV $h sync >/dev/null; done
OV h1 ls | tail -1 | tr -s ' '
before=$(vxlan_packets)
on h2 ip netns exec a-h2 ping -c1 -W2 "$(grep -o '10\.0\.9\.[0-9]*' "$work/b-h3.out")" >/dev/null && echo "ping h2 -> h3 by address: ok"
on h3 ip netns exec c-h3 ping -c1 -W2 web >/dev/null && echo "ping h3 -> h1 by name: ok"
on h2 ip netns exec b-h2 ping -c1 -W2 www.multi >/dev/null && echo "ping h2 -> h1 by alias: ok"
on h1 ip netns exec web ping -c1 -W2 a-h1 >/dev/null && echo "ping on one host: ok"
[ "$(vxlan_packets)" -gt "$before" ] && echo "carried as VXLAN on UDP 4789"
on h2 ip -d link show "$(on h2 ip -o link | grep -o 'vx-[0-9a-f]*' | head -1)" | grep -o 'mtu 1450\|vxlan id [0-9]* local 192.168.50.12\|dstport 4789 nolearning proxy' | tr '\n' ';'; echo
on h3 ip netns exec a-h3 ip -o link show eth0 | grep -o 'mtu [0-9]*'
serve outside 8080
echo "outside: $(on h3 ip netns exec a-h3 python3 -c 'import socket; s=socket.create_connection(("10.200.0.2",8080),timeout=3); print(s.recv(100).decode().strip())')"
# h2 leaves: the others drop its entries on their next sync.
for c in a b c; do OV h2 disconnect multi $c-h2; done
[ "$(host_state h2)" = "$clean_h2" ] && echo "h2: clean after its last member left"
OV h1 sync multi
echo "h1 fdb towards h2: $(on h1 bridge fdb show | grep -c 'dst 192.168.50.12' || true)"
echo "h1 names of h2: $(on h1 nsenter --net=/run/netns/web dig +short @10.0.9.1 a-h2.multi | wc -l)"
expect_fail OV h1 disconnect multi a-h3
expect_fail OV h1 rm multi
OV h1 rm multi --force
for h in h1 h3; do OV $h sync >/dev/null; done
echo "store after rm: [$(store)]"
for h in h1 h3; do on $h ip -o link | grep -c 'ov-\|vx-\|veo' || true; on $h ip netns list | wc -l; done | tr '\n' ' '; echo "(devices and namespaces left on h1, h3)"
"#,
        240,
    )
    .assert_ok()
    .assert_has(&[
        "addresses: 9 taken, 9 distinct",
        "multi overlay 10.0.9.0/24",
        " 10 3",
        "ping h2 -> h3 by address: ok",
        "ping h3 -> h1 by name: ok",
        "ping h2 -> h1 by alias: ok",
        "ping on one host: ok",
        "carried as VXLAN on UDP 4789",
        "mtu 1450;vxlan id",
        "local 192.168.50.12;dstport 4789 nolearning proxy;",
        "mtu 1450",
        "outside: outside saw 192.168.50.13",
        "h2: clean after its last member left",
        "h1 fdb towards h2: 0",
        "h1 names of h2: 0",
        "container a-h3 is on host 192.168.50.13, not this one (192.168.50.11); disconnect it there",
        "overlay network multi has members",
        "store after rm: []",
        "0 0 0 0 (devices and namespaces left on h1, h3)",
    ]);
}

#[test]
fn an_unreachable_store_changes_nothing_and_undo_takes_back_store_writes() {
    on_hosts(
        r#"
clean=$(host_state h1)
OV h1 create net1 --subnet 10.0.7.0/24
OV h1 connect net1 c1 >/dev/null
on h1 "$NETSH" --kv "$KV" undo last >/dev/null
echo "after undo: store [$(store | grep -v '^overlay/net/\|^overlay/subnet/\|^overlay/vni/' || true)]"
[ "$(host_state h1)" = "$clean" ] && echo "after undo: h1 clean"
on h1 "$NETSH" --kv "$KV" --allow 'kv:lease/*' -c 'kv put lease/h1 up ttl 1'
echo "lease: [$(store | grep lease || true)]"
for _ in $(seq 50); do [ -z "$(store | grep lease || true)" ] && break; sleep 0.1; done
echo "lease after its ttl: [$(store | grep lease || true)]"
kill "$ETCD_PID"; wait "$ETCD_PID" 2>/dev/null || true
expect_fail OV h1 connect net1 c2
[ "$(host_state h1)" = "$clean" ] && echo "etcd down: h1 unchanged"
expect_fail on h1 "$NETSH" --kv http://x run $OV_GRANTS "$RECIPES/overlay.wasm" -- ls
"#,
        120,
    )
    .assert_ok()
    .assert_has(&[
        "after undo: store []",
        "after undo: h1 clean",
        "lease: [lease/h1]",
        "lease after its ttl: []",
        "key-value store etcd://192.168.50.100:2379",
        "http://192.168.50.100:2379",
        "etcd down: h1 unchanged",
        "not an etcd:// URL",
    ]);
}

#[test]
fn etcd_freezing_mid_connect_and_a_connect_killed_midway_are_both_taken_back_by_undo() {
    on_hosts(
        r#"
OV h1 create mid --subnet 10.0.4.0/24
OV h1 connect mid first >/dev/null
clean=$(host_state h1); before=$(store)
etcd_pid=$(pgrep -P "$ETCD_PID" etcd)
NS1() { on h1 "$NETSH" --kv "$KV" "$@"; }
# The ids of h1's runs in state $1.
runs_in() { NS1 runs --state "$1" --json | python3 -c 'import json,sys; print(" ".join(r["id"] for r in json.load(sys.stdin)))'; }
# Stop etcd (SIGSTOP: it takes connections but never answers) once the
# next connect has reserved its endpoint, the connect's second store write.
freeze_after_endpoint() {
  timeout 60 python3 "$TESTDIR/freeze_etcd.py" http://192.168.50.100:2379 overlay/ep/mid/ "$etcd_pid" >"$work/watch.out" &
  watcher=$!; HOLDERS+=($watcher)
  for _ in $(seq 100); do grep -q watching "$work/watch.out" && break; sleep 0.05; done
}
frozen() { [ "$(ps -o stat= -p "$etcd_pid" | cut -c1)" = T ]; }
thaw() {
  kill -CONT "$etcd_pid"
  kill "$watcher" 2>/dev/null || true; wait "$watcher" 2>/dev/null || true
  for _ in $(seq 50); do ETCDCTL_API=3 etcdctl --endpoints http://192.168.50.100:2379 endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
}

# 1. etcd freezes mid-run: netsh waits, says who did not answer, rolls the
#    host back, and names the store writes it could not take back yet.
freeze_after_endpoint
expect_fail OV h1 connect mid c2
frozen && echo "etcd was frozen mid-connect"
[ "$(host_state h1)" = "$clean" ] && echo "frozen store: h1 rolled back"
thaw
echo "runs left to finish: $(runs_in rollback-incomplete | wc -w)"
NS1 undo last
[ "$(store)" = "$before" ] && echo "undo after etcd came back: store as before"

# 2. netsh killed mid-connect (etcd frozen to hold it there): undo of the
#    interrupted run takes back its kernel and store changes.
freeze_after_endpoint
OV h1 connect mid c3 >/dev/null 2>&1 & conn=$!
for _ in $(seq 100); do frozen && break; sleep 0.05; done
sleep 0.2
# The netsh process: the job itself once nsenter exec'd it, or its child.
victim=$conn; [ "$(cat /proc/$conn/comm)" = netsh ] || victim=$(pgrep -x netsh -P "$conn")
kill -KILL "$victim" && echo "connect killed"
wait "$conn" || true
thaw
echo "interrupted runs: $(runs_in interrupted | wc -w)"
NS1 undo "$(runs_in interrupted)"
[ "$(host_state h1)" = "$clean" ] && echo "killed connect undone: h1 as before"
[ "$(store)" = "$before" ] && echo "killed connect undone: store as before"
OV h1 connect mid c4 | grep -o '10\.0\.4\.[0-9]*/24'
"#,
        150,
    )
    .assert_ok()
    .assert_has(&[
        "etcd was frozen mid-connect",
        "no answer from http://192.168.50.100:2379 within",
        "frozen store: h1 rolled back",
        "runs left to finish: 1",
        "undo after etcd came back: store as before",
        "connect killed",
        "interrupted runs: 1",
        "killed connect undone: h1 as before",
        "killed connect undone: store as before",
        "10.0.4.3/24",
    ]);
}

#[test]
fn without_etcd_an_overlay_serves_one_host_from_the_embedded_store() {
    sandboxed(
        r#"
before=$(snapshot)
ip link add uplink type veth peer name uplink-peer
ip addr add 192.168.77.2/24 dev uplink
ip link set uplink up
ip link set uplink-peer up
ip route add default via 192.168.77.1
OV="$NETSH run $(grants_of "$RECIPES/overlay.wasm") $RECIPES/overlay.wasm --"
$OV create solo --vni 42
$OV connect solo c1
$OV connect solo c2 --ip 10.0.0.9
ip netns exec c1 ping -c1 -W2 c2 >/dev/null && echo "ping by name: ok"
expect_fail $OV connect solo c3 --ip 10.0.0.9
expect_fail $OV connect solo c3 --ip 10.0.0.1
expect_fail $OV create bad --vni 0
expect_fail $OV create solo
expect_fail $DB create multi -d overlay
$OV inspect solo | python3 -c 'import json,sys; n=json.load(sys.stdin)[0]; print(n["Driver"], n["Options"]["com.docker.network.driver.overlay.vxlanid_list"], sorted(c["IPv4Address"] for c in n["Containers"].values()))'
$OV disconnect solo c1
$OV disconnect solo c2
$OV rm solo
ip route del default; ip link del uplink
settled_to "$before" && echo "teardown: clean"
"#,
        90,
    )
    .assert_ok()
    .assert_has(&[
        "solo subnet 10.0.0.0/24 gateway 10.0.0.1 vni 42",
        "ping by name: ok",
        "address 10.0.0.9 is taken on overlay network solo",
        "--ip 10.0.0.1 is the gateway of overlay network solo",
        "--vni \"0\" must be a number from 1 to 16777215",
        "overlay network solo already exists",
        "docker-bridge makes bridge networks; for -d overlay (several hosts, VXLAN) run recipes/overlay.wasm",
        "overlay 42 ['10.0.0.2/24', '10.0.0.9/24']",
        "teardown: clean",
    ]);
}

#[test]
fn with_the_agent_watching_a_host_follows_the_others_without_anyone_running_anything_there() {
    on_hosts(
        r#"
clean_h2=$(host_state h2)
OV h1 create fast --subnet 10.0.5.0/24
OV h2 connect fast b1 >/dev/null
for h in h1 h2; do
  on $h "$NETSH" --kv "$KV" --agent-socket "$work/agent-$h.sock" agent \
    --sync "overlay/=run $OV_GRANTS $RECIPES/overlay.wasm -- sync" >/dev/null 2>"$work/agent-$h.log" &
  HOLDERS+=($!)
  for _ in $(seq 100); do [ -S "$work/agent-$h.sock" ] && break; sleep 0.05; done
done
# h1's commands go through its agent, one at a time with its syncs.
OVA() { local h=$1; shift; on "$h" "$NETSH" --kv "$KV" --agent-socket "$work/agent-$h.sock" run $OV_GRANTS "$RECIPES/overlay.wasm" -- "$@"; }
OVA h1 connect fast a1 >/dev/null
# h2 never runs a command: its agent sees the store change and syncs.
reached=no
for _ in $(seq 100); do
  on h2 ip netns exec b1 ping -c1 -W0.1 10.0.5.3 >/dev/null 2>&1 && { reached=yes; break; }
done
echo "h2 reaches a1 through its agent: $reached"
OVA h1 disconnect fast a1
for _ in $(seq 100); do on h2 bridge fdb show | grep -q 'dst 192.168.50.11' || break; sleep 0.05; done
echo "h2 fdb towards h1 after a1 left: $(on h2 bridge fdb show | grep -c 'dst 192.168.50.11' || true)"
OVA h1 rm fast --force
for _ in $(seq 100); do [ "$(host_state h2)" = "$clean_h2" ] && break; sleep 0.05; done
[ "$(host_state h2)" = "$clean_h2" ] && echo "h2: left with the network, by itself"
echo "store: [$(store)]"
grep -c 'overlay/ changed' "$work/agent-h2.log" | sed 's/^[1-9][0-9]*$/syncs logged/'
expect_fail on h1 "$NETSH" agent --agent-socket "$work/x.sock" --sync "overlay/=run x.wasm"
"#,
        120,
    )
    .assert_ok()
    .assert_has(&[
        "h2 reaches a1 through its agent: yes",
        "h2 fdb towards h1 after a1 left: 0",
        "h2: left with the network, by itself",
        "store: []",
        "syncs logged",
        "--sync watches the shared store: give it with --kv etcd://HOST:2379",
    ]);
}
