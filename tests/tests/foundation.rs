//! The foundation: recipes change real kernel state, and packets prove it.

use netsh_e2e::{Firewall, sandboxed, sandboxed_on};

#[test]
fn netns_pair_up_pings_and_down_cleans() {
    let out = sandboxed(
        r#"
before=$(snapshot)
G=$(grants_of $RECIPES/netns-pair.wasm)
$NETSH run $G $RECIPES/netns-pair.wasm -- --left left --right right --subnet 10.20.0.0/24
ip netns list | grep -q "^left" && ip netns list | grep -q "^right"
ip -n left -j addr show dev veth0 | grep -q '"local":"10.20.0.1"'
ip -n right -j addr show dev veth1 | grep -q '"local":"10.20.0.2"'
ip -n left -j link show veth0 | grep -q '"operstate":"UP"'
ip netns exec left ping -c1 -W2 10.20.0.2 >/dev/null
ip netns exec right ping -c1 -W2 10.20.0.1 >/dev/null
echo PING-OK
$NETSH run $G $RECIPES/netns-pair.wasm -- down --left left --right right
settled_to "$before"
echo CLEAN
"#,
        60,
    );
    out.assert_ok();
    assert!(out.stdout.contains("PING-OK") && out.stdout.contains("CLEAN"), "{}", out.stdout);
}

#[test]
fn netns_bridge_connects_namespaces_through_the_bridge() {
    let out = sandboxed(
        r#"
before=$(snapshot)
G=$(grants_of $RECIPES/netns-bridge.wasm)
$NETSH run $G $RECIPES/netns-bridge.wasm -- --count 3 --subnet 10.30.0.0/24 --bridge br-t --prefix c
[ "$(ip netns list | awk '{print $1}' | sort | tr '\n' ' ')" = "c1 c2 c3 " ]
ip -j link show br-t | grep -q '"operstate":"UP"'
ip -j addr show dev br-t | grep -q '"local":"10.30.0.1"'
for i in 1 2 3; do
  ip -j link show veth-c$i | grep -q '"master":"br-t"'
  ip -n c$i -j route show default | grep -q '"gateway":"10.30.0.1"'
done
ip -n c3 -j addr show dev eth0 | grep -q '"local":"10.30.0.4"'
ip netns exec c1 ping -c1 -W2 10.30.0.1 >/dev/null
ip netns exec c1 ping -c1 -W2 10.30.0.4 >/dev/null
ip netns exec c3 ping -c1 -W2 10.30.0.2 >/dev/null
echo PING-OK
$NETSH run $G $RECIPES/netns-bridge.wasm -- down --count 3 --bridge br-t --prefix c
settled_to "$before"
echo CLEAN
"#,
        60,
    );
    out.assert_ok();
    assert!(out.stdout.contains("PING-OK") && out.stdout.contains("CLEAN"), "{}", out.stdout);
}

#[test]
fn sandbox_run_leaves_the_caller_untouched() {
    let out = sandboxed(
        r#"
before=$(snapshot)
$NETSH run --sandbox $(grants_of $RECIPES/netns-bridge.wasm) $RECIPES/netns-bridge.wasm -- --count 2 > topo.txt
settled_to "$before"
cat topo.txt
"#,
        60,
    );
    out.assert_ok();
    assert!(out.stdout.contains("netns brns2"), "topology not printed: {}", out.stdout);
    assert!(out.stdout.contains("192.168.60.3/24"), "{}", out.stdout);
}

#[test]
fn show_json_reads_back_the_kernel() {
    let out = sandboxed(
        r#"
ip netns add j1
ip -n j1 link add dummy0 type bridge
ip -n j1 addr add 10.1.2.3/24 dev dummy0
ip -n j1 link set dummy0 up
$NETSH show -n j1 --json
"#,
        30,
    );
    out.assert_ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("show --json is JSON");
    assert!(v["firewall"] == "nftables" || v["firewall"] == "iptables", "show names the firewall backend: {v}");
    let v = &v["namespaces"];
    let links = v[0]["links"].as_array().expect("links");
    let dummy = links.iter().find(|l| l["name"] == "dummy0").expect("dummy0 listed");
    assert_eq!(dummy["kind"], "bridge");
    assert_eq!(dummy["addresses"][0], "10.1.2.3/24");
    assert!(v[0]["routes"].as_array().unwrap().iter().any(|r| r["dest"] == "10.1.2.0/24"));
}

#[test]
fn show_hides_link_local_noise_unless_asked_and_brief_lists_links_alone() {
    sandboxed(
        r#"
ip netns add j1
ip netns exec j1 sysctl -qw net.ipv6.conf.all.disable_ipv6=0
ip -n j1 link add br0 type bridge
ip -n j1 addr add 10.1.2.3/24 dev br0
ip -n j1 addr add fe80::1/64 dev br0 nodad
ip -n j1 link set br0 up
ip -n j1 -6 addr show dev br0 | grep -q fe80::1 && echo "kernel: fe80::1 on br0"
$NETSH show -n j1 | grep -q fe80 && echo "LEAK: link-local shown" || echo "default: no link-local"
echo "all: $($NETSH show -a -n j1 | grep -c 'fe80::1/64')"
echo "full routes: $($NETSH show -n j1 | grep -c 'route 10.1.2.0/24')"
echo "brief routes: $($NETSH show -b -n j1 | grep -c 'route ' || true)"
echo "brief br0: $($NETSH show -b -n j1 | grep -c '^  br0 .* 10.1.2.3/24')"
echo "shell: $($NETSH -c 'show -br -a j1' | grep -c 'fe80::1/64')"
"#,
        30,
    )
    .assert_ok()
    .assert_has(&[
        "kernel: fe80::1 on br0",
        "default: no link-local",
        "all: 1",
        "full routes: 1",
        "brief routes: 0",
        "brief br0: 1",
        "shell: 1",
    ]);
}

#[test]
fn one_recipe_s_down_leaves_another_recipe_s_namespaces_alone() {
    let out = sandboxed(
        r#"
$NETSH run $(grants_of $RECIPES/netns-pair.wasm) $RECIPES/netns-pair.wasm
$NETSH run $(grants_of $RECIPES/netns-bridge.wasm) $RECIPES/netns-bridge.wasm
ip netns list | awk '{print $1}' | sort | tr '\n' ' ' | sed 's/^/BOTH /'; echo
# netns-bridge's down aimed at netns-pair's names: they are not its own.
$NETSH run $(grants_of $RECIPES/netns-bridge.wasm) $RECIPES/netns-bridge.wasm -- down --prefix netns --count 2 2>warn.txt
ip netns list | grep -qx netns1 && echo "pair's netns1 kept: ok"
grep -o 'is not attached to br0 by this recipe' warn.txt | head -1
expect_fail $NETSH run $(grants_of $RECIPES/netns-pair.wasm) $RECIPES/netns-pair.wasm -- down --left brns1 --right brns2
$NETSH run $(grants_of $RECIPES/netns-bridge.wasm) $RECIPES/netns-bridge.wasm -- down
$NETSH run $(grants_of $RECIPES/netns-pair.wasm) $RECIPES/netns-pair.wasm -- down
ip netns list | wc -l | sed 's/^/LEFT /'
"#,
        60,
    );
    out.assert_ok();
    let o = &out.stdout;
    for expected in [
        "BOTH brns1 brns2 netns0 netns1 ",
        "pair's netns1 kept: ok",
        "is not attached to br0 by this recipe",
        "it is not a pair netns-pair made; nothing was deleted",
        "LEFT 0",
    ] {
        assert!(o.contains(expected), "missing {expected:?} in\n{o}\n{}", out.stderr);
    }
}

/// The README's main job: the demo proves every path it prints.
#[test]
fn the_demo_reaches_peers_the_outside_and_the_published_port() {
    let out = std::process::Command::new("timeout")
        .args(["120", "./demo/demo.sh"])
        .current_dir(netsh_e2e::root())
        .output()
        .expect("run demo/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for want in [
        "client pinged www (web) by name",
        "outside saw 10.200.0.1",
        "outside -> published:     web saw 10.200.0.2",
        "host 127.0.0.1:8080 ->    web saw",
        "chain intact and complete",
    ] {
        assert!(stdout.contains(want), "demo output lacks {want:?}:\n{stdout}");
    }
}

#[test]
fn show_lists_firewall_state_netsh_did_not_make_read_only_and_works_without_root() {
    for fw in Firewall::BOTH {
        sandboxed_on(
            fw,
            r#"
ip link add br0 type bridge
$NETSH --allow nat:172.20.0.0/16 --allow link:br0 -c 'nat masquerade 172.20.0.0/16 out-not br0; fw forward in br0 out br0'
# Someone else's: a Docker-style accept, a DROP policy, a table of their own.
iptables -A FORWARD -i docker0 -o docker0 -j ACCEPT
ip6tables -P FORWARD DROP
nft add table inet theirs
$NETSH show > show.txt
sed -n '/not netsh.s (read-only):/,$p' show.txt | grep -c 'NETSH-\|netsh:\|table ip netsh' | sed 's/^/ours among others: /' || true
grep -x '    iptables -t filter -A FORWARD -i docker0 -o docker0 -j ACCEPT' show.txt | sed 's/^ */listed: /'
grep -x '    ip6tables -t filter -P FORWARD DROP' show.txt | sed 's/^ */listed: /'
grep -x '    nft table inet theirs' show.txt | sed 's/^ */listed: /'
echo "brief: $($NETSH show -b | grep -o 'firewall rules or tables netsh did not make')"
echo "shell: $($NETSH -c 'fw others' | grep -c 'docker0')"
$NETSH show --json | python3 -c 'import json,sys; v=json.load(sys.stdin); print("json others:", any("docker0" in l for l in v["namespaces"][0]["others"]))'
echo "iptables untouched: $(iptables -S FORWARD | grep -c docker0)"
chmod o+x "$work"
NETSH_STATE_DIR=/tmp/nobody-state setpriv --reuid=65534 --regid=65534 --clear-groups $NETSH show > user.txt 2>&1 && echo "non-root: exit 0"
grep -c '^  br0 ' user.txt | sed 's/^/non-root sees br0: /'
echo "non-root reads no firewall: $(grep -c 'docker0' user.txt || true)"
"#,
            30,
        )
        .assert_ok()
        .assert_has(&[
            "ours among others: 0",
            "listed: iptables -t filter -A FORWARD -i docker0 -o docker0 -j ACCEPT",
            "listed: ip6tables -t filter -P FORWARD DROP",
            "listed: nft table inet theirs",
            "brief: firewall rules or tables netsh did not make",
            "shell: 1",
            "json others: True",
            "iptables untouched: 1",
            "non-root: exit 0",
            "non-root sees br0: 1",
            "non-root reads no firewall: 0",
        ]);
    }
}
