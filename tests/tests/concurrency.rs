//! netsh driven the way container runtimes drive network plugins: one call
//! per container, many at once, teardown in any order and after the
//! namespace is gone. The result must equal some serial order.

use netsh_e2e::{Firewall, sandboxed, sandboxed_on};

#[test]
fn twenty_concurrent_connects_get_distinct_addresses_and_ports() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
make_outside
$DB create busy --subnet 172.26.0.0/24 >/dev/null
pids=()
for i in $(seq 1 20); do
  $DB connect busy c$i --publish $((7000 + i)):80 >out.$i 2>err.$i &
  pids+=($!)
done
failed=0; for p in "${pids[@]}"; do wait $p || failed=$((failed + 1)); done
echo "failed: $failed"
for i in $(seq 1 20); do ip -n c$i -o -4 addr show eth0 | awk '{print $4}'; done | sort | uniq | wc -l | sed 's/^/distinct addresses: /'
echo "dnat entries: $(dnat_entries | wc -l)"
for i in 3 11 20; do serve c$i 80; echo "port $((7000 + i)): $(fetch outside 10.200.0.1 $((7000 + i)))"; done
stop_servers
# Two containers racing for one host port: exactly one gets it.
$DB connect busy x1 --publish 7777:80 >/dev/null 2>x1.err & a=$!
$DB connect busy x2 --publish 7777:80 >/dev/null 2>x2.err & b=$!
ok=0; wait $a && ok=$((ok + 1)); wait $b && ok=$((ok + 1))
echo "7777 winners: $ok, entries: $(dnat_entries | grep -c '^7777 ')"
cat x1.err x2.err | grep -o 'already published by [^ ;]*\|at the same time' | head -1
ip netns list | grep -c '^x' | sed 's/^/x namespaces: /'
"#,
            180,
        );
        out.assert_ok();
        let o = &out.stdout;
        for expected in [
            "failed: 0",
            "distinct addresses: 20",
            "dnat entries: 20",
            "port 7003: c3 saw 10.200.0.2",
            "port 7011: c11 saw 10.200.0.2",
            "port 7020: c20 saw 10.200.0.2",
            "7777 winners: 1, entries: 1",
            "x namespaces: 1",
        ] {
            assert!(o.contains(expected), "{fw:?}: missing {expected:?} in\n{o}\n{}", out.stderr);
        }
    }
}

#[test]
fn five_concurrent_creates_get_distinct_subnets() {
    let out = sandboxed(
        r#"
pids=()
for i in 1 2 3 4 5; do $DB create n$i >/dev/null & pids+=($!); done
failed=0; for p in "${pids[@]}"; do wait $p || failed=$((failed + 1)); done
echo "failed: $failed"
$DB ls | awk 'NR > 1 {print $3}' | sort | uniq | wc -l | sed 's/^/distinct subnets: /'
for i in 1 2 3 4 5; do ip -o -4 addr show br-n$i | awk '{print $4}'; done | sort | uniq | wc -l | sed 's/^/distinct gateways: /'
"#,
        90,
    );
    out.assert_ok();
    for expected in ["failed: 0", "distinct subnets: 5", "distinct gateways: 5"] {
        assert!(out.stdout.contains(expected), "missing {expected:?} in\n{}\n{}", out.stdout, out.stderr);
    }
}

#[test]
fn concurrent_first_connects_to_the_default_network_make_it_once() {
    let out = sandboxed(
        r#"
pids=()
for i in 1 2 3 4 5 6; do $DB connect bridge c$i >out.$i 2>err.$i & pids+=($!); done
failed=0; for p in "${pids[@]}"; do wait $p || failed=$((failed + 1)); done
echo "failed: $failed"
errs() { for i in 1 2 3 4 5 6; do cat err.$i; done; }
errs | grep -v 'made the default network' | sed 's/^/unexpected: /' || true
echo "made it: $(errs | grep -c 'made the default network')"
echo "networks: $($DB ls -q | tr '\n' ' ')"
echo "subnet reservations: $($NETSH -c 'kv ls docker-bridge/subnet/' | wc -l)"
# (racing makers may leave it the second free pool: the first is only held while the winner is decided)
subnet=$($DB ls | awk '$1 == "bridge" {print $3}' | cut -d. -f1-2)
for i in 1 2 3 4 5 6; do ip -n c$i -o -4 addr show eth0 | awk '{print $4}'; done | sort -u | grep -c "^$subnet\." | sed 's/^/distinct addresses in the network: /'
"#,
        90,
    );
    out.assert_ok().assert_has(&[
        "failed: 0",
        "made it: 1",
        "networks: bridge ",
        "subnet reservations: 1",
        "distinct addresses in the network: 6",
    ]);
    assert!(!out.stdout.contains("unexpected: "), "{}", out.stdout);
}

#[test]
fn runtime_style_teardown_of_fifty_containers_never_fails_and_leaves_nothing() {
    let out = sandboxed(
        r#"
before=$(snapshot)
args=(create big --subnet 172.27.0.0/24)
for i in $(seq 1 50); do args+=(';' connect big c$i --publish $((8000 + i)):80); done
$DB "${args[@]}" >/dev/null
# A process still runs inside some containers while they are torn down.
for i in 5 17 33; do ip netns exec c$i sleep 30 & done
sleepers=$(jobs -p)
failed=0
for i in $(seq 1 50); do
  case $((i % 3)) in
    # The runtime deleted the namespace first, then asks netsh.
    0) ip netns del c$i; $DB disconnect big c$i >/dev/null 2>>err.txt || failed=$((failed + 1)) ;;
    # netsh first, then the runtime deletes what is left.
    *) $DB disconnect big c$i >/dev/null 2>>err.txt || failed=$((failed + 1)); ip netns del c$i 2>/dev/null || true ;;
  esac
done
echo "failed: $failed"
cat err.txt | head -5
$DB rm big
kill $sleepers 2>/dev/null; wait 2>/dev/null || true
settled_to "$before" && echo "teardown: clean"
$NETSH runs --state rollback-incomplete | tail -n +2 | wc -l | sed 's/^/incomplete rollbacks: /'
"#,
        180,
    );
    out.assert_ok();
    for expected in ["failed: 0", "teardown: clean", "incomplete rollbacks: 0"] {
        assert!(out.stdout.contains(expected), "missing {expected:?} in\n{}\n{}", out.stdout, out.stderr);
    }
}

#[test]
fn a_flushed_ruleset_is_reported_and_restored() {
    let out = sandboxed(
        r#"
make_outside
$DB create fl --subnet 172.28.0.0/24 >/dev/null
$DB connect fl a >/dev/null
nft flush ruleset
iptables -t nat -A POSTROUTING -s 10.99.0.0/16 -j ACCEPT
$DB connect fl b --publish 9090:80 2>warn.txt >/dev/null
cat warn.txt
serve outside 7000
echo "after repair: $(fetch b 10.200.0.2 7000)"
serve b 80
echo "published after repair: $(fetch outside 10.200.0.1 9090)"
stop_servers
"#,
        60,
    );
    out.assert_ok();
    for expected in [
        "network fl's firewall rules were missing (was the ruleset flushed?); restoring them",
        "after repair: outside saw 10.200.0.1",
        "published after repair: b saw 10.200.0.2",
    ] {
        assert!(out.stdout.contains(expected), "missing {expected:?} in\n{}\n{}", out.stdout, out.stderr);
    }
}

#[test]
fn a_forward_policy_of_drop_still_forwards_netsh_traffic() {
    let out = sandboxed(
        r#"
make_outside
iptables -P FORWARD DROP
before=$(snapshot)
$DB create strict --subnet 172.29.0.0/24 >/dev/null
$DB connect strict s1 --publish 8088:80 >/dev/null
$DB connect strict s2 >/dev/null
ip netns exec s1 ping -c1 -W2 172.29.0.3 >/dev/null && echo "container -> container: ok"
serve outside 7000
echo "out: $(fetch s1 10.200.0.2 7000)"
serve s1 80
echo "published: $(fetch outside 10.200.0.1 8088)"
stop_servers
iptables -S FORWARD | grep -c 'netsh:accept-mark' | sed 's/^/compat rules: /'
$DB rm strict --force
settled_to "$before" && echo "teardown: clean (compat rule gone too)"
"#,
        60,
    );
    out.assert_ok();
    for expected in [
        "container -> container: ok",
        "out: outside saw 10.200.0.1",
        "published: s1 saw 10.200.0.2",
        "compat rules: 1",
        "teardown: clean",
    ] {
        assert!(out.stdout.contains(expected), "missing {expected:?} in\n{}\n{}", out.stdout, out.stderr);
    }
}

#[test]
fn a_container_reconnects_right_after_its_disconnect() {
    // The disconnect deletes the namespace; the kernel removes its veth a
    // moment later, while the next connect already wants the same name.
    let out = sandboxed(
        r#"
$DB create n1 >/dev/null
ok=0
for i in $(seq 1 5); do
  $DB connect n1 c1 --publish 8080:80 >/dev/null && $DB disconnect n1 c1 >/dev/null && ok=$((ok + 1))
done
echo "cycles: $ok"
"#,
        60,
    );
    out.assert_ok();
    assert!(out.stdout.contains("cycles: 5"), "{}\n{}", out.stdout, out.stderr);
}

#[test]
fn two_runs_removing_the_same_rules_at_once_leave_none_and_bring_none_back() {
    // 150 host ports published to one container port, then two batches
    // removing all of them at once: whichever commits second finds rules
    // gone; they count as removed, and its rollback (if it stops) must not
    // bring back what the other removed.
    let out = sandboxed(
        r#"
for i in $(seq 1 150); do echo "publish tcp $((8000 + i)) to 10.0.0.2:80"; done > adds.nsh
for round in 1 2 3; do
  $NETSH --allow publish:8000-9000 batch adds.nsh >/dev/null
  $NETSH -c 'fw ls' | grep -o '^[0-9a-f]\{12\}' | sed 's/^/fw rm /' > rms.nsh
  $NETSH --allow publish:8000-9000 batch rms.nsh >r1 2>&1 & a=$!
  $NETSH --allow publish:8000-9000 batch rms.nsh >r2 2>&1 & b=$!
  wait $a || true; wait $b || true
  echo "round $round: $($NETSH -c 'fw ls' | grep -c '^[0-9a-f]\{12\}' || true) left"
  grep -hv 'does not exist\|rolled back\|stopped at line' r1 r2 | sed 's/^/unexpected: /' || true
done
nft list table ip netsh >/dev/null 2>&1 || nft list table ip6 netsh >/dev/null 2>&1 || echo "table ip netsh: gone"
"#,
        120,
    );
    out.assert_ok().assert_has(&["round 1: 0 left", "round 2: 0 left", "round 3: 0 left", "table ip netsh: gone"]);
    assert!(!out.stdout.contains("unexpected: "), "{}", out.stdout);
}

#[test]
fn six_containers_sharing_one_namespace_at_once_are_all_named_and_all_leave() {
    sandboxed(
        r#"
before=$(snapshot)
$DB create sh --subnet 10.37.0.0/24 >/dev/null
$DB connect sh c1 >/dev/null
owner=$(ip -n c1 -o -4 addr show eth0 | awk '{print $4}')
pids=()
for i in $(seq 1 6); do $DB connect container:c1 s$i >/dev/null 2>err.$i & pids+=($!); done
failed=0; for p in "${pids[@]}"; do wait $p || failed=$((failed + 1)); done
echo "connect failed: $failed"
same=0; for i in $(seq 1 6); do [ "$(ip -n s$i -o -4 addr show eth0 | awk '{print $4}')" = "$owner" ] && same=$((same + 1)); done
echo "share c1's address: $same"
echo "names in c1's record: $(for f in $(ls /etc/netns/.names); do cat /etc/netns/.names/$f; done | sort -u | grep -c '^c1$\|^s[1-6]$')"
echo "sharers recorded: $($NETSH -c 'kv ls docker-bridge/sharers/c1/' | wc -l)"
# Two runs racing for one name: one wins, the other changes nothing.
$DB connect container:c1 dup >/dev/null 2>dup1.err & a=$!
$DB connect container:c1 dup >/dev/null 2>dup2.err & b=$!
ok=0; wait $a && ok=$((ok + 1)); wait $b && ok=$((ok + 1))
echo "dup winners: $ok"
$DB disconnect container:c1 dup >/dev/null
pids=()
for i in $(seq 1 6); do $DB disconnect container:c1 s$i >/dev/null 2>derr.$i & pids+=($!); done
failed=0; for p in "${pids[@]}"; do wait $p || failed=$((failed + 1)); done
echo "disconnect failed: $failed"
echo "names left: $(ip netns list | grep -c '^s[1-6]\b' || true)"
[ -z "$(ls -A /etc/netns/.names 2>/dev/null)" ] && echo "no alias records left"
echo "sharers left: $($NETSH -c 'kv ls docker-bridge/sharers/c1/' | wc -l)"
echo "c1 after: $(ip -n c1 -o -4 addr show eth0 | awk '{print $4}')"
$DB rm sh --force >/dev/null
settled_to "$before" && echo "teardown: clean"
"#,
        120,
    )
    .assert_ok()
    .assert_has(&[
        "connect failed: 0",
        "share c1's address: 6",
        "names in c1's record: 7",
        "sharers recorded: 6",
        "dup winners: 1",
        "disconnect failed: 0",
        "names left: 0",
        "no alias records left",
        "sharers left: 0",
        "c1 after: 10.37.0.2/24",
        "teardown: clean",
    ]);
}
