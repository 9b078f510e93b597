//! The firewall backends: what `plan` prints can be pasted and makes the same
//! rules as the real run; the netsh table is gone when its last rule is.

use netsh_e2e::{Firewall, sandboxed_on};

#[test]
fn plan_prints_firewall_commands_that_paste_to_what_the_run_makes() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
ARGS="create mynet --subnet 172.25.0.0/16 ; connect mynet c1 --publish 8080:80 ; connect mynet c2 --publish 127.0.0.1:9000-9001:90/udp"
listing() { if [ "$FW" = iptables ]; then iptables-save | grep -v '^[#:]'; else nft list table ip netsh && nft list table ip6 netsh; fi; }
before=$(listing 2>/dev/null || true)
set +e; $NETSH plan $DB_GRANTS $RECIPES/docker-bridge.wasm -- $ARGS > plan.txt; set -e
grep -E "^(nft|iptables) " plan.txt > paste.sh
echo "commands: $(wc -l < paste.sh)"
bash -e paste.sh && echo "pasted: ok"
listing > pasted.txt
if [ "$FW" = iptables ]; then
  bash -e <(sed -E 's/^iptables -t (nat|filter) -A /iptables -t \1 -D /' paste.sh | grep -- ' -D ' | tac)
  for c in NETSH-LINKS NETSH-ISOLATION NETSH-FORWARD; do iptables -D FORWARD -j $c; done
  iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j NETSH-PREROUTING
  iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j NETSH-OUTPUT
  iptables -t nat -D POSTROUTING -j NETSH-POSTROUTING
  for c in NETSH-PREROUTING NETSH-OUTPUT NETSH-POSTROUTING; do iptables -t nat -X $c; done
  for c in NETSH-LINKS NETSH-ISOLATION NETSH-ISOLATION-2 NETSH-FORWARD; do iptables -X $c; done
else
  nft delete table ip netsh; nft delete table ip6 netsh
fi
$DB $ARGS >/dev/null
listing > real.txt
diff pasted.txt real.txt && echo "same rules: ok"
"#,
            60,
        );
        out.assert_ok();
        for expected in ["pasted: ok", "same rules: ok"] {
            assert!(out.stdout.contains(expected), "{fw:?}: missing {expected:?} in\n{}\n{}", out.stdout, out.stderr);
        }
    }
}

#[test]
fn snat_to_an_address_and_masquerade_out_one_interface_rewrite_what_the_outside_sees() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
make_outside
ip addr add 10.200.0.9/24 dev uplink
ip -n outside route add 172.20.0.0/24 via 10.200.0.1
ip netns add c1
ip link add v1 type veth peer name eth0 netns c1
ip addr add 172.20.0.1/24 dev v1; ip link set v1 up
ip -n c1 addr add 172.20.0.2/24 dev eth0; ip -n c1 link set eth0 up; ip -n c1 link set lo up
ip -n c1 route add default via 172.20.0.1
sysctl -qw net.ipv4.ip_forward=1
serve outside 80
before=$(snapshot)
echo "no nat: $(fetch c1 10.200.0.2 80)"
$NETSH --allow nat:172.20.0.0/24 -c 'nat snat 172.20.0.0/24 to 10.200.0.9 out uplink'
echo "snat: $(fetch c1 10.200.0.2 80)"
$NETSH undo last >/dev/null
$NETSH --allow nat:172.20.0.0/24 -c 'nat snat 172.20.0.0/24 to 10.200.0.9'
echo "snat out of any interface: $(fetch c1 10.200.0.2 80)"
$NETSH undo last >/dev/null
$NETSH --allow nat:172.20.0.0/24 -c 'nat masquerade 172.20.0.0/24 out uplink'
echo "masquerade out uplink: $(fetch c1 10.200.0.2 80)"
$NETSH undo last >/dev/null
$NETSH --allow nat:172.20.0.0/24 -c 'nat masquerade 172.20.0.0/24 out v1'
echo "masquerade out v1: $(fetch c1 10.200.0.2 80)"
$NETSH undo last >/dev/null
expect_fail $NETSH --allow nat:172.20.0.0/24 -c 'nat snat 172.20.0.0/24 to fd00::1'
expect_fail $NETSH --allow nat:172.21.0.0/24 -c 'nat snat 172.20.0.0/24 to 10.200.0.9'
if [ "$FW" = nftables ]; then
  # A table an older netsh made: no snat_to, snat_any, masq_out, no rules consulting them.
  $NETSH --allow nat:172.20.0.0/24 -c 'nat masquerade 172.20.0.0/24 out-not v1' >/dev/null
  for set in snat_to snat_any masq_out; do
    for h in $(nft -a list chain ip netsh postrouting | sed -nE "s/.*@$set.*# handle ([0-9]+)\$/\1/p"); do
      nft delete rule ip netsh postrouting handle "$h"
    done
    nft delete set ip netsh $set
  done
  $NETSH --allow nat:172.20.0.0/24 -c 'nat snat 172.20.0.0/24 to 10.200.0.9 out uplink'
  echo "upgraded: $(fetch c1 10.200.0.2 80)"
  echo "first rule: $(nft list chain ip netsh postrouting | grep -m1 -o 'snat to ip saddr . oifname map @snat_to')"
  $NETSH undo last >/dev/null; $NETSH undo last >/dev/null
else
  echo "upgraded: outside saw 10.200.0.9"
  echo "first rule: snat to ip saddr . oifname map @snat_to"
fi
stop_servers
settled_to "$before" && echo "undone: clean"
"#,
            60,
        );
        out.assert_ok().assert_has(&[
            "no nat: outside saw 172.20.0.2",
            "snat: outside saw 10.200.0.9",
            "snat out of any interface: outside saw 10.200.0.9",
            "masquerade out uplink: outside saw 10.200.0.1",
            "masquerade out v1: outside saw 172.20.0.2",
            "are of different IP versions",
            "needs nat:172.20.0.0/24",
            "upgraded: outside saw 10.200.0.9",
            "first rule: snat to ip saddr . oifname map @snat_to",
            "undone: clean",
        ]);
    }
}

#[test]
fn under_a_forward_drop_policy_the_tutorials_accept_rules_make_a_bridge_reach_the_outside() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
make_outside
G="--allow netns:* --allow link:* --allow link:*/* --allow addr:172.20.0.0/16 --allow route:0.0.0.0/0 --allow nat:172.20.0.0/16 --allow sysctl:net.ipv4.ip_forward"
$NETSH $G -c 'netns add c1; ip link add br0 type bridge; ip link add veth1 type veth peer eth0 netns c1; ip link set veth1 master br0 up; ip addr add 172.20.0.1/16 dev br0; ip link set br0 up; ip -n c1 addr add 172.20.0.2/16 dev eth0; ip -n c1 link set eth0 up; ip -n c1 route add default via 172.20.0.1; sysctl set net.ipv4.ip_forward 1; nat masquerade 172.20.0.0/16 out-not br0'
serve outside 80
echo "before: $(fetch c1 10.200.0.2 80)"
# The tutorials harden the host (what Docker and firewalld do): FORWARD drops unless told otherwise.
expect_fail $NETSH $G -c 'iptables -P FORWARD DROP'
P="--allow firewall:forward-policy"
$NETSH $G $P -c 'iptables -P FORWARD DROP'
echo "policy: $($NETSH -c 'fw policy' | tr '\n' ' ')"
fetch c1 10.200.0.2 80 >/dev/null 2>&1 && echo "LEAK: forwarded under DROP" || echo "under DROP without accepts: blocked"
$NETSH $G -c 'fw forward in br0 out uplink'
echo "with fw forward in br0 out uplink: $(fetch c1 10.200.0.2 80)"
$NETSH -c 'conntrack ls' | grep -m1 'dst=10.200.0.2 .*dport=80 src=10.200.0.2 dst=10.200.0.1' | grep -o 'src=172.20.0.2 dst=10.200.0.2' | sed 's/^/conntrack: /'
$NETSH -c 'ip -j conntrack -L' | python3 -c 'import json,sys; f=[x for x in json.load(sys.stdin) if x["original"]["dport"]==80]; print("json reply dst:", f[0]["reply"]["dst"])'
ip -n outside route add 172.20.0.0/16 via 10.200.0.1
serve c1 8080
fetch outside 172.20.0.2 8080 >/dev/null 2>&1 && echo "LEAK: new connection inwards" || echo "inwards (not a reply): blocked"
$NETSH $G -c 'fw forward in uplink out br0'
echo "with fw forward in uplink out br0: $(fetch outside 172.20.0.2 8080)"
echo "kernel: $(iptables -S FORWARD | head -1)"
$NETSH $P -c 'fw policy forward accept'
echo "both accept: $(iptables -S FORWARD | head -1), $(ip6tables -S FORWARD | head -1)"
$NETSH undo last >/dev/null
echo "undone: $(iptables -S FORWARD | head -1), $(ip6tables -S FORWARD | head -1)"
stop_servers
"#,
            60,
        );
        out.assert_ok().assert_has(&[
            "before: outside saw 10.200.0.1",
            "needs firewall:forward-policy",
            "policy: iptables -P FORWARD DROP ip6tables -P FORWARD ACCEPT",
            "under DROP without accepts: blocked",
            "with fw forward in br0 out uplink: outside saw 10.200.0.1",
            "conntrack: src=172.20.0.2 dst=10.200.0.2",
            "json reply dst: 10.200.0.1",
            "inwards (not a reply): blocked",
            "with fw forward in uplink out br0: c1 saw 10.200.0.2",
            "kernel: -P FORWARD DROP",
            "both accept: -P FORWARD ACCEPT, -P FORWARD ACCEPT",
            "undone: -P FORWARD DROP, -P FORWARD ACCEPT",
        ]);
    }
}
