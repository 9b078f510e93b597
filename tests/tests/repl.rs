//! The shell: batch files, `-c`, recording and the interactive front end.

use netsh_e2e::sandboxed;

/// Grants for a hand-made Docker-style network.
const GRANTS: &str = "--allow netns:* --allow link:* --allow link:*/* --allow addr:172.20.0.0/16 --allow route:0.0.0.0/0 \
                      --allow nat:172.20.0.0/16 --allow publish:tcp/8080 --allow sysctl:net.ipv4.ip_forward \
                      --allow firewall:forward-policy";

#[test]
fn a_batch_failing_on_line_7_changes_nothing_unless_keep_going() {
    let out = sandboxed(
        &format!(
            r#"
cat > setup.nsh <<'NSH'
# a Docker-style setup by hand
netns add c1
link add br0 type bridge
link add veth1 type veth peer eth0 netns c1
link set veth1 master br0 up
addr add 172.20.0.1/16 dev br0
-n c1 addr add 172.20.0.300/16 dev eth0
link set br0 up
NSH
before=$(snapshot)
expect_fail $NETSH batch {GRANTS} setup.nsh
[ "$before" = "$(snapshot)" ] && echo "unchanged: ok"
expect_fail $NETSH batch --keep-going {GRANTS} setup.nsh
ip -j link show br0 | grep -q '"operstate":"UP"\|"flags":\[[^]]*"UP"' && echo "rest applied: ok"
"#
        ),
        60,
    );
    out.assert_ok();
    let o = &out.stdout;
    assert!(o.contains("setup.nsh:7: \"172.20.0.300/16\" is not a CIDR"), "{o}");
    assert!(o.contains("stopped at line 7; nothing was changed") && o.contains("unchanged: ok"), "{o}");
    assert!(o.contains("1 line(s) failed (--keep-going applied the rest)") && o.contains("rest applied: ok"), "{o}");
}

#[test]
fn a_recorded_session_replays_to_the_same_state() {
    let out = sandboxed(
        &format!(
            r#"
$NETSH {GRANTS} -c 'record start s.nsh; netns add c1; link add br0 type bridge; link add veth1 type veth peer eth0 netns c1; link set veth1 master br0 up; lnk typo; addr add 172.20.0.1/16 dev br0; -n c1 addr add 172.20.0.2/16 dev eth0; -n c1 link set eth0 up; -n c1 route add default via 172.20.0.1; record stop' 2>/dev/null || true
$NETSH {GRANTS} -c 'record start s.nsh; netns add c1; link add br0 type bridge; link add veth1 type veth peer eth0 netns c1; link set veth1 master br0 up; addr add 172.20.0.1/16 dev br0; -n c1 addr add 172.20.0.2/16 dev eth0; -n c1 link set eth0 up; -n c1 route add default via 172.20.0.1; record stop'
$NETSH show --json | grep -v '"index"\|"mac"\|fe80' > first.json
cat s.nsh
ip link del veth1; ip netns del c1; ip link del br0
$NETSH batch {GRANTS} s.nsh
$NETSH show --json | grep -v '"index"\|"mac"\|fe80' > second.json
diff first.json second.json && echo "same state: ok"
"#
        ),
        60,
    );
    out.assert_ok();
    let o = &out.stdout;
    assert!(o.contains("8 command(s) saved to s.nsh") && o.contains("-n c1 route add default via 172.20.0.1"), "{o}");
    assert!(o.contains("same state: ok"), "{o}\n{}", out.stderr);
}

#[test]
fn the_interactive_shell_builds_a_network_by_hand() {
    let out = sandboxed(
        &format!(
            r#"
command -v tmux >/dev/null || {{ echo "tmux missing"; exit 1; }}
make_outside
export TMUX_TMPDIR=$work
tmux new-session -d -s t -x 200 -y 50 "$NETSH {GRANTS}"
type_line() {{ tmux send-keys -t t -l -- "$1"; tmux send-keys -t t Enter; sleep 0.3; }}
sleep 0.5
type_line "netns add c1"
type_line "netns add c2"
type_line "link add br0 type bridge"
type_line "link add veth1 type veth peer eth0 netns c1"
type_line "link add veth2 type veth peer eth0 netns c2"
# completion: "link set vet" + Tab completes the common prefix, a second Tab lists the links made above
tmux send-keys -t t "link set vet" Tab; sleep 0.3
tmux send-keys -t t Tab; sleep 0.5
tmux capture-pane -t t -p | grep -v '^ *$' | tail -3 | sed 's/^/PANE /'
tmux send-keys -t t C-u
# in the namespace -n names, and only bridges after master
tmux send-keys -t t -- "-n c1 link set e" Tab; sleep 0.5
tmux capture-pane -t t -p | grep -v '^ *$' | tail -1 | sed 's/^/NSPANE /'
tmux send-keys -t t C-u
tmux send-keys -t t "link set veth1 master " Tab; sleep 0.5
tmux capture-pane -t t -p | grep -v '^ *$' | tail -1 | sed 's/^/MASTERPANE /'
tmux send-keys -t t C-u
type_line "link set veth1 master br0 up"
type_line "link set veth2 master br0 up"
type_line "addr add 172.20.0.1/16 dev br0"
type_line "link set br0 up"
for i in 1 2; do
  type_line "-n c$i addr add 172.20.0.$((i+1))/16 dev eth0"
  type_line "-n c$i link set eth0 up"
  type_line "-n c$i link set lo up"
  type_line "-n c$i route add default via 172.20.0.1"
done
type_line "sysctl set net.ipv4.ip_forward 1"
# a hardened host, as the tutorials make it: forward only what is accepted (their iptables lines, pasted)
type_line "iptables -P FORWARD DROP"
type_line "iptables -A FORWARD -i br0 -o uplink -j ACCEPT"
type_line "iptables -A FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
type_line "iptables -t nat -A POSTROUTING -s 172.20.0.0/16 ! -o br0 -j MASQUERADE"
type_line "fw forward in br0 out br0"   # between containers, where br_netfilter sends bridged packets through FORWARD
type_line "publish tcp 8080 to 172.20.0.2:80"
type_line "link add br-tmp type bridge"
type_line "undo"
type_line "bogus command"
type_line "grants"
sleep 0.5
tmux capture-pane -t t -p -S -60 | sed 's/^/SCREEN /'
type_line "exit"
sleep 0.3
ip netns exec c1 ping -c1 -W2 172.20.0.3 >/dev/null && echo "c1->c2: ok"
ip netns exec c2 ping -c1 -W2 172.20.0.1 >/dev/null && echo "c2->gateway: ok"
echo "policy: $(iptables -S FORWARD | head -1)"
ip netns exec c2 ping -c1 -W2 10.200.0.2 >/dev/null && echo "c2->outside under DROP: ok"
serve c1 80
echo "published: $(fetch outside 10.200.0.1 8080)"
stop_servers
dnat_entries | grep -qx '8080 172.20.0.2:80' && echo "dnat: ok"
ip link show br-tmp >/dev/null 2>&1 && echo "LEFTOVER br-tmp" || echo "undo of the last command: ok"
tmux kill-server 2>/dev/null || true
"#
        ),
        90,
    );
    out.assert_ok();
    let o = &out.stdout;
    for expected in [
        "veth1",
        "veth2",
        "unknown command \"bogus\"",
        "allow link:*",
        "c1->c2: ok",
        "c2->gateway: ok",
        "policy: -P FORWARD DROP",
        "c2->outside under DROP: ok",
        "nothing to add: each fw forward rule accepts the replies",
        "dnat: ok",
        "published: c1 saw 10.200.0.2",
        "undo of the last command: ok",
    ] {
        assert!(o.contains(expected), "missing {expected:?} in\n{o}\n{}", out.stderr);
    }
    // The echoed commands name one veth each: only the candidate list shows both on one line,
    // and the prompt line shows the completed common prefix.
    let pane: Vec<&str> = o.lines().filter_map(|l| l.strip_prefix("PANE ")).collect();
    assert!(
        pane.iter().any(|l| l.contains("veth1") && l.contains("veth2")),
        "completion listed no candidates: {pane:?}"
    );
    assert!(
        pane.iter().any(|l| l.trim_end().ends_with("link set veth")),
        "the common prefix was not completed: {pane:?}"
    );
    let last = |tag: &str| o.lines().find_map(|l| l.strip_prefix(tag)).unwrap_or_default().trim_end().to_string();
    assert!(last("NSPANE ").ends_with("-n c1 link set eth0"), "not completed in c1: {o}");
    assert!(last("MASTERPANE ").ends_with("master br0"), "master did not complete to the one bridge: {o}");
}

#[test]
fn ip_j_listings_read_like_iproute2_s_json() {
    let out = sandboxed(
        &format!(
            r#"
ip netns add c1
ip -n c1 link add veth0 type veth peer name veth1
ip -n c1 addr add 10.61.0.1/24 dev veth0
ip -n c1 link set veth0 up; ip -n c1 link set veth1 up
ip -n c1 route add 10.62.0.0/16 via 10.61.0.9
pick='import json,sys; d=json.load(sys.stdin); print(sorted((l["ifname"], tuple((a["family"], a["local"], a["prefixlen"]) for a in l.get("addr_info", []) if a["family"] == "inet")) for l in d if l["ifname"] != "lo"))'
echo "netsh addr: $($NETSH {GRANTS} -c 'ip -j -n c1 a' | python3 -c "$pick")"
echo "ip addr:    $(ip -j -n c1 a | python3 -c "$pick")"
# (netsh lists both families, `ip route` IPv4 only)
routes='import json,sys; print(sorted((r["dst"], r.get("gateway")) for r in json.load(sys.stdin) if ":" not in r["dst"]))'
echo "netsh route: $($NETSH {GRANTS} -c 'ip -n c1 -j r' | python3 -c "$routes")"
echo "ip route:    $(ip -n c1 -j r | python3 -c "$routes")"
$NETSH {GRANTS} -c 'ip -j -n c1 link' | python3 -c 'import json,sys; l=[x for x in json.load(sys.stdin) if x["ifname"]=="veth0"][0]; print("flags:", "UP" in l["flags"], "LOWER_UP" in l["flags"], l["operstate"], l["linkinfo"]["info_kind"])'
echo "brief: $($NETSH {GRANTS} -c 'ip -br -n c1 a' | grep -c 'veth0 10.61.0.1/24')"
"#
        ),
        60,
    );
    out.assert_ok();
    let o = &out.stdout;
    let line = |prefix: &str| o.lines().find(|l| l.starts_with(prefix)).map(|l| l[prefix.len()..].trim().to_string());
    assert_eq!(line("netsh addr:"), line("ip addr:"), "{o}\n{}", out.stderr);
    assert_eq!(line("netsh route:"), line("ip route:"), "{o}");
    assert!(line("netsh addr:").is_some_and(|l| l.contains("10.61.0.1")), "{o}");
    assert!(o.contains("flags: True True UP veth"), "{o}");
    assert!(o.contains("brief: 1"), "{o}");
}

#[test]
fn a_link_moves_to_a_process_s_namespace_by_its_name_and_the_grants_name_it() {
    sandboxed(
        r#"
ip netns add c1
ip netns exec c1 timeout 30 sleep 30 & in_c1=$!
unshare --net timeout 30 sleep 30 & unnamed=$!
sleep 0.3
ip link add m1 type veth peer name m1p
echo "identify: $($NETSH -c "netns identify $in_c1")"
expect_fail $NETSH --allow link:m1 --allow link:c1/m1 -c "link set m1 netns $in_c1"
$NETSH --allow link:m1 --allow link:c1/m1 --allow netns:c1 -c "link set m1 netns $in_c1"
ip -n c1 link show m1 >/dev/null && echo "m1 is in c1"
expect_fail $NETSH --allow-all -c "link set m1p netns $unnamed"
expect_fail $NETSH --allow-all -c "link set m1p netns $$"
expect_fail $NETSH --allow-all -c "netns identify 4000000"
ip link show m1p >/dev/null && echo "m1p stayed"
kill $in_c1 $unnamed 2>/dev/null || true
wait $in_c1 $unnamed 2>/dev/null || true
"#,
        30,
    )
    .assert_ok()
    .assert_has(&[
        "identify: c1",
        "needs netns:c1",
        "m1 is in c1",
        "namespace has no name, and grants scope namespaces by name: `netns attach NAME",
        "is netsh's own network namespace under another name",
        "process 4000000 does not exist",
        "m1p stayed",
    ]);
}

#[test]
fn a_macvlan_device_on_the_uplink_gives_a_namespace_its_own_address_on_that_network() {
    sandboxed(
        r#"
make_outside
ip netns add c1
before=$(snapshot)
G="--allow link:mv0 --allow link:uplink --allow link:c1/mv0 --allow netns:c1 --allow addr:10.200.0.0/24"
$NETSH $G -c 'ip link add link uplink name mv0 type macvlan mode bridge; link set mv0 netns c1; -n c1 addr add 10.200.0.50/24 dev mv0; -n c1 link set mv0 up'
ip -n c1 -d link show mv0 | grep -o 'macvlan mode bridge' | sed 's/^/kernel: /'
ip netns exec c1 ping -c1 -W2 10.200.0.2 >/dev/null && echo "c1 reaches the outside on the uplink's network"
ip netns exec outside ip neigh show 10.200.0.50 | grep -q lladdr && echo "outside sees 10.200.0.50 as a host of its own"
expect_fail $NETSH $G -c 'link add mv1 type macvlan'
expect_fail $NETSH --allow-all -c 'link add link nope name mv1 type macvlan'
expect_fail $NETSH --allow-all -c 'link add link uplink name mv1 type macvlan mode sideways'
expect_fail $NETSH --allow link:mv1 -c 'link add link uplink name mv1 type macvlan'
$NETSH undo last >/dev/null
settled_to "$before" && echo "undone: clean"
"#,
        30,
    )
    .assert_ok()
    .assert_has(&[
        "kernel: macvlan mode bridge",
        "c1 reaches the outside on the uplink's network",
        "outside sees 10.200.0.50 as a host of its own",
        "a macvlan device needs its parent: link add link PARENT name mv1 type macvlan",
        "link nope",
        "macvlan mode \"sideways\": use private, vepa, bridge or passthru",
        "needs link:uplink",
        "undone: clean",
    ]);
}

#[test]
fn a_policy_rule_sends_traffic_by_another_table_and_its_undo_gives_a_deleted_rule_back() {
    sandboxed(
        r#"
ip netns add c1
ip -n c1 link set lo up
# Two uplinks; both providers answer on 10.99.0.1. Main routes by a, table 100 by b.
for x in a b; do
  n=$([ $x = a ] && echo 1 || echo 2)
  ip netns add isp$x
  ip -n c1 link add e$x type veth peer name wan netns isp$x
  ip -n c1 addr add 10.$n.0.2/24 dev e$x
  ip -n c1 link set e$x up
  ip -n isp$x addr add 10.$n.0.1/24 dev wan
  ip -n isp$x link set wan up
  ip -n isp$x link set lo up
  ip -n isp$x addr add 10.99.0.1/32 dev lo
  serve isp$x 8000
done
ip -n c1 route add default via 10.1.0.1
ip -n c1 route add default via 10.2.0.1 table 100
echo "main: $(fetch c1 10.99.0.1 8000)"
echo "nsenter: $($NETSH --allow netns:c1 --allow exec:c1 -c 'sudo nsenter --net=/run/netns/c1 ip -o -4 addr show ea' | awk '{print $4}')"
G="--allow netns:c1 --allow route:10.99.0.0/24"
$NETSH $G -c 'ip -n c1 rule add to 10.99.0.0/24 lookup 100 pref 500'
echo "kernel: $(ip -n c1 rule | grep '^500')"
echo "by rule: $(fetch c1 10.99.0.1 8000)"
echo "route get: $($NETSH -c 'ip -n c1 route get 10.99.0.1')"
echo "route get from: $($NETSH -c 'ip -n c1 route get 10.99.0.1 from 10.1.0.2' | grep -o 'via [0-9.]*')"
echo "listed: $($NETSH -c 'ip -n c1 rule' | grep '^500')"
echo "json: $($NETSH -c 'ip -j -n c1 rule show' | grep -o '"dst":"10.99.0.0","dstlen":24,"family":"inet","priority":500,"src":"all","table":"100"')"
echo "show: $($NETSH show -n c1 | grep 'ip rule')"
echo "show -a: $($NETSH show -a -n c1 | grep -c 'ip rule')"
$NETSH $G -c '-n c1 rule add to 10.99.0.1/32 blackhole pref 400'
echo "blackholed: $(fetch c1 10.99.0.1 8000 2>&1 | grep -o 'Invalid argument' || true)"
$NETSH $G -c '-n c1 rule del pref 400'
echo "deleted: $(fetch c1 10.99.0.1 8000)"
$NETSH undo last >/dev/null
echo "given back: $(ip -n c1 rule | grep '^400')"
$NETSH --allow netns:c1 --allow route:::/0 -c 'ip -6 -n c1 rule add fwmark 0x10 lookup 7'
echo "v6: $(ip -6 -n c1 rule | grep fwmark)"
echo "-6 lists: $($NETSH -c 'ip -6 -n c1 rule' | grep -vc '(IPv6)$' || true) IPv4, $($NETSH -c 'ip -6 -n c1 rule' | grep -c fwmark) fwmark"
echo "-4 -j lists: $($NETSH -c 'ip -4 -j -n c1 rule' | grep -o '"family":"inet6"' | wc -l) IPv6"
echo "-6 route: $($NETSH -c 'ip -6 -n c1 route' | grep -c '^10\.' || true) IPv4"
expect_fail $NETSH $G -c '-n c1 rule add lookup 100'
expect_fail $NETSH $G -c '-n c1 rule add to 10.99.0.0/24 iif ea lookup 100'
expect_fail $NETSH $G -c '-n c1 rule add to 10.99.0.0/24 lookup 100 pref 500'
expect_fail $NETSH $G -c '-n c1 rule del pref 444'
echo "main's rule, judged as itself: $(expect_fail $NETSH $G -c '-n c1 rule del pref 32766' | grep -c 'needs route:0.0.0.0/0')"
echo "main kept: $(ip -n c1 rule | grep -c '^32766:')"
expect_fail $NETSH $G -c '-n nope rule add to 10.99.0.0/24 lookup 100'
$NETSH $G -c '-n c1 rule del to 10.99.0.0/24 lookup 100; -n c1 rule del pref 400'
echo "gone: $(fetch c1 10.99.0.1 8000)"
echo "left: $(ip -n c1 rule | grep -vc 'lookup local\|lookup main\|lookup default')"
stop_servers
"#,
        40,
    )
    .assert_ok()
    .assert_has(&[
        "main: ispa saw 10.1.0.2",
        "nsenter: 10.1.0.2/24",
        "kernel: 500:\tfrom all to 10.99.0.0/24 lookup 100",
        "by rule: ispb saw 10.2.0.2",
        "route get: 10.99.0.1/32 via 10.2.0.1 dev eb src 10.2.0.2",
        "route get from: via 10.2.0.1",
        "listed: 500:\tfrom all to 10.99.0.0/24 lookup 100",
        r#"json: "dst":"10.99.0.0""#,
        "show:   ip rule 500:\tfrom all to 10.99.0.0/24 lookup 100",
        "show -a: 6",
        "blackholed: Invalid argument",
        "deleted: ispb saw 10.2.0.2",
        "given back: 400:\tfrom all to 10.99.0.1 blackhole",
        "v6: 32765:\tfrom all fwmark 0x10 lookup 7",
        "-6 lists: 0 IPv4, 1 fwmark",
        "-4 -j lists: 0 IPv6",
        "-6 route: 0 IPv4",
        "needs route:0.0.0.0/0",
        "needs link:c1/ea",
        "rule pref 500 from all to 10.99.0.0/24 lookup 100 already exists",
        "rule pref 444 from all does not exist",
        "main's rule, judged as itself: 1",
        "main kept: 1",
        "needs netns:nope",
        "gone: ispa saw 10.1.0.2",
        "left: 0",
    ]);
}

#[test]
fn a_link_s_mac_address_is_set_as_tutorials_write_it_and_undone() {
    sandboxed(
        r#"
ip netns add c1
ip -n c1 link add eth0 type veth peer name peer0
mac() { ip -n c1 -br link show eth0 | awk '{print $3}'; }
old=$(mac)
$NETSH --allow netns:c1 --allow link:c1/eth0 -c 'ip -n c1 link set dev eth0 address 02:42:AC:11:00:02'
echo "kernel: $(mac)"
echo "listed: $($NETSH -c 'ip -j -n c1 link show eth0' | grep -o '"address":"[^"]*"')"
expect_fail $NETSH --allow netns:c1 --allow link:c1/eth0 -c '-n c1 link set eth0 address 02:42'
expect_fail $NETSH --allow netns:c1 -c '-n c1 link set eth0 address 02:42:ac:11:00:03'
$NETSH undo last >/dev/null
[ "$(mac)" = "$old" ] && echo "undone: the old address"
"#,
        30,
    )
    .assert_ok()
    .assert_has(&[
        "kernel: 02:42:ac:11:00:02",
        r#"listed: "address":"02:42:ac:11:00:02""#,
        "\"02:42\" is not a MAC address",
        "needs link:c1/eth0",
        "undone: the old address",
    ]);
}

#[test]
fn routes_in_other_tables_with_a_preferred_source_are_added_listed_and_undone() {
    sandboxed(
        r#"
ip netns add c1
ip -n c1 link add br0 type bridge
ip -n c1 addr add 10.5.0.1/24 dev br0
ip -n c1 link set br0 up
G="--allow netns:c1 --allow link:c1/br0 --allow route:10.9.0.0/24"
$NETSH $G -c '-n c1 route add 10.9.0.0/24 dev br0 src 10.5.0.1 table 100'
echo "kernel: $(ip -n c1 route show table 100)"
$NETSH -c '-n c1 route ls' | grep -q 10.9.0.0 && echo "LEAK: table 100 in main" || echo "main: without it"
echo "table 100: $($NETSH -c '-n c1 route ls table 100')"
echo "all: $($NETSH -c '-n c1 route ls table all' | grep -c '^10\.')"
echo "json: $($NETSH -c 'ip -j -n c1 route show table 100')"
echo "show: $($NETSH show -n c1 | grep -c 'table 100')"
expect_fail $NETSH $G -c '-n c1 route add 10.9.0.0/24 dev br0 table local'
$NETSH undo last >/dev/null
echo "undone: [$(ip -n c1 route show table 100)]"
$NETSH $G --allow route:10.8.0.0/24 -c '-n c1 route add 10.8.0.0/24 via 10.5.0.7 proto bird; -n c1 route add 10.9.0.1/32 dev br0 scope host'
echo "kernel proto: $(ip -n c1 route show 10.8.0.0/24)"
echo "kernel scope: $(ip -n c1 route show 10.9.0.1)"
echo "listed: $($NETSH -c '-n c1 route ls' | grep -e 'proto bird' -e 'scope host' | tr '\n' ';')"
echo "json: $($NETSH -c 'ip -j -n c1 route' | grep -o '"protocol":"bird"')"
expect_fail $NETSH $G -c '-n c1 route add 10.9.0.2/32 dev br0 scope far'
# Deleting the kernel's own route and undoing it gives back that route, not the one the deletion named.
$NETSH --allow netns:c1 --allow link:c1/br0 --allow route:10.5.0.0/24 -c '-n c1 route del 10.5.0.0/24 dev br0'
echo "deleted: [$(ip -n c1 route show 10.5.0.0/24)]"
$NETSH undo last >/dev/null
echo "given back: $(ip -n c1 route show 10.5.0.0/24)"
"#,
        30,
    )
    .assert_ok()
    .assert_has(&[
        "kernel proto: 10.8.0.0/24 via 10.5.0.7 dev br0 proto bird",
        "kernel scope: 10.9.0.1 dev br0 proto static scope host",
        "listed: 10.8.0.0/24 via 10.5.0.7 dev br0 proto bird;10.9.0.1/32 dev br0 scope host;",
        r#"json: "protocol":"bird""#,
        "scope \"far\": use global, site, link, host, nowhere or a number",
        "deleted: []",
        "given back: 10.5.0.0/24 dev br0 proto kernel scope link src 10.5.0.1",
        "kernel: 10.9.0.0/24 dev br0 proto static scope link src 10.5.0.1",
        "main: without it",
        "table 100: 10.9.0.0/24 dev br0 src 10.5.0.1 table 100",
        "all: 2",
        r#""prefsrc":"10.5.0.1","table":"100""#,
        "show: 1",
        "table \"local\": use a number",
        "undone: []",
    ]);
}
