//! netsh's DNS resolver for docker-bridge networks, queried with dig from
//! namespaces entered with nsenter (no /etc/netns bind mounts) and through
//! glibc; an "outside" namespace plays the host's upstream nameserver.

use netsh_e2e::sandboxed;

/// The outside namespace with a test nameserver on 10.200.0.2, which the
/// sandbox's /etc/resolv.conf names.
const UPSTREAM: &str = r#"
make_outside
timeout 60 ip netns exec outside python3 $TESTDIR/dns_upstream.py 10.200.0.2 100 &
PIDS+=($!)
for _ in $(seq 200); do ip netns exec outside ss -H -lun 'sport = :53' | grep -q . && break; sleep 0.05; done
echo "nameserver 10.200.0.2" > resolv.conf
mount --bind resolv.conf /etc/resolv.conf
"#;

#[test]
fn containers_resolve_peers_aliases_and_reverse_names_and_the_rest_is_forwarded() {
    sandboxed(
        &format!(
            "{UPSTREAM}{}",
            r#"
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
$DB create vault --subnet 10.33.0.0/24 --internal >/dev/null
$DB connect vault v1 ';' connect vault v2 >/dev/null
$NETSH dns status | grep 'zone vault'
echo "internal peer: $(short v1 @10.33.0.1 v2)"
echo "internal, outside name: $(status v1 @10.33.0.1 example.test)"
$DB rm vault --force
echo "tcp: $(short c2 +tcp @10.31.0.1 web)/ $(short c2 +tcp @10.31.0.1 example.test)"
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
"#
        ),
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
        "zone vault on 10.33.0.1:53 for 10.33.0.0/24: 2 names (internal: nothing forwarded), listening",
        "internal peer: 10.33.0.3",
        "internal, outside name: status: REFUSED",
        "tcp: 10.31.0.2 / 203.0.113.7",
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

#[test]
fn connect_shapes_hostname_resolv_conf_and_aliases_and_refuses_bad_options() {
    sandboxed(
        &format!(
            "{UPSTREAM}{}",
            r#"
before=$(snapshot)
$DB create opts --subnet 10.33.0.0/24 >/dev/null
$DB connect opts c1 --hostname web1 --dns 10.200.0.2 --dns-search corp.test --dns-option ndots:2 \
  --network-alias api --net-alias svc >/dev/null
$DB connect opts c2 >/dev/null
sed 's/^/resolv: /' /etc/netns/c1/resolv.conf
echo "hostname: $(ip netns exec c1 cat /etc/hostname)"
echo "through --dns: $(ip netns exec c1 getent hosts example.test | tr -s ' \t' ' ')"
echo "aliases: $(nsenter --net=/run/netns/c2 dig +short +tries=2 @10.33.0.1 api) $(nsenter --net=/run/netns/c2 dig +short +tries=2 @10.33.0.1 svc)"
expect_fail $DB connect opts c2 --hostname x
expect_fail $DB connect opts c3 --dns nope
expect_fail $DB connect opts c3 --dns-search 'a b'
expect_fail $DB connect opts c3 --hostname -bad
ip netns | grep -q '^c3' || echo "no c3"
$DB rm opts --force
stop_servers
settled_to "$before" && echo "teardown: clean"
"#
        ),
        120,
    )
    .assert_ok()
    .assert_has(&[
        "resolv: nameserver 10.200.0.2\nresolv: search corp.test\nresolv: options ndots:2\n",
        "hostname: web1",
        "through --dns: 203.0.113.7 example.test",
        "aliases: 10.33.0.2 10.33.0.2",
        "shape the files of a namespace connect creates; c2 already has one",
        "--dns \"nope\" is not an IP address",
        "\"a b\" must be one word",
        "host name \"-bad\"",
        "no c3",
        "teardown: clean",
    ]);
}
