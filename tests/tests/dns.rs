//! netsh's DNS resolver for docker-bridge networks, queried with dig from
//! namespaces entered with nsenter (no /etc/netns bind mounts) and through
//! glibc; an "outside" namespace plays the host's upstream nameserver.

use netsh_e2e::sandboxed;

#[test]
fn containers_resolve_peers_aliases_and_reverse_names_and_the_rest_is_forwarded() {
    sandboxed(
        r#"
make_outside
timeout 60 ip netns exec outside python3 $TESTDIR/dns_upstream.py 10.200.0.2 100 &
PIDS+=($!)
for _ in $(seq 200); do ip netns exec outside ss -H -lun 'sport = :53' | grep -q . && break; sleep 0.05; done
echo "nameserver 10.200.0.2" > resolv.conf
mount --bind resolv.conf /etc/resolv.conf
ip -n outside route add 10.31.0.0/24 via 10.200.0.1
before=$(snapshot)
$NETSH dns status | head -1
$DB create front --subnet 10.31.0.0/24
$DB create back --subnet 10.32.0.0/24
$DB connect front c1 --alias web ';' connect front c2 ';' connect back c1 ';' connect back c3
pid=$($NETSH dns status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
$NETSH dns status
q() { local ns=$1; shift; nsenter --net=/run/netns/$ns dig +tries=2 +time=2 "$@"; }
short() { q "$@" +short | tr '\n' ' '; }
status() { q "$@" | grep -o 'status: [A-Z]*'; }
echo "name: $(short c2 @10.31.0.1 c1)"
echo "alias: $(short c2 @10.31.0.1 WEB)"
echo "qualified: $(short c2 @10.31.0.1 web.front)"
echo "reverse: $(short c2 @10.31.0.1 -x 10.31.0.2)"
echo "other network: $(status c2 @10.31.0.1 c3)"
echo "both networks: $(short c1 @10.31.0.1 c3)"
echo "forwarded: $(short c2 @10.31.0.1 example.test)"
echo "unknown in zone: $(status c2 @10.31.0.1 nobody.front)"
echo "stranger: $(status outside @10.31.0.1 c1)"
echo "glibc: $(ip netns exec c1 getent hosts c3 | tr -s ' \t' ' ')"
ip netns exec c1 ping -c1 -W2 c3 >/dev/null && echo "ping by name: ok"
$DB connect front c4
echo "added: $(short c2 @10.31.0.1 c4)"
$NETSH undo last >/dev/null
echo "undone: $(status c2 @10.31.0.1 c4.front)"
$DB disconnect front c1
echo "disconnected: $(status c2 @10.31.0.1 web.front)"
[ "$($NETSH dns status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')" = "$pid" ] && echo "one resolver, no restarts"
$DB rm front --force
$DB rm back --force
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null || echo "stopped with the last network"
$NETSH dns status | head -1
stop_servers
settled_to "$before" && echo "teardown: clean"
"#,
        120,
    )
    .assert_ok()
    .assert_has(&[
        "zone front on 10.31.0.1:53 for 10.31.0.0/24: 3 names, listening",
        "zone back on 10.32.0.1:53 for 10.32.0.0/24: 2 names, listening",
        "upstreams 10.200.0.2",
        "name: 10.31.0.2",
        "alias: 10.31.0.2",
        "qualified: 10.31.0.2",
        "reverse: c1.front.",
        "other network: status: NXDOMAIN",
        "both networks: 10.32.0.3",
        "forwarded: 203.0.113.7",
        "unknown in zone: status: NXDOMAIN",
        "stranger: status: REFUSED",
        "glibc: 10.32.0.3 c3",
        "ping by name: ok",
        "added: 10.31.0.4",
        "undone: status: NXDOMAIN",
        "disconnected: status: NXDOMAIN",
        "one resolver, no restarts",
        "stopped with the last network",
        "resolver: not running",
        "teardown: clean",
    ]);
}
