//! Grants, audit, rollback, undo and confirm: a recipe does only what it was
//! granted, every change is recorded, and a failed or unwanted run is undone.

use netsh_e2e::sandboxed;

const MIS: &str = "$GUESTS/misbehave.wasm";

/// Grants narrow enough that each mode's last step is outside them.
const NARROW: &str = "--allow link:br-* --allow publish:tcp/8000-8100 --allow sysctl:net.ipv4.ip_forward";

#[test]
fn calls_outside_the_grants_are_denied_audited_and_rolled_back() {
    let out = sandboxed(
        &format!(
            r#"
make_outside
before=$(snapshot)
for mode in bridge-then-eth9 bridge-then-del-uplink bridge-then-publish-9000 bridge-then-sysctl; do
  expect_fail $NETSH run {NARROW} {MIS} -- $mode
  settled_to "$before"
done
echo "rolled back: ok"
$NETSH audit | grep ' deny ' | sed 's/^/AUDIT /'
$NETSH audit --json | grep -c '"decision":"allow"' | sed 's/^/ALLOWED /'
$NETSH audit verify
"#
        ),
        60,
    );
    out.assert_ok();
    let o = &out.stdout;
    for expected in [
        "permission denied: needs link:eth9; rerun with --allow link:eth9",
        "permission denied: needs link:uplink; rerun with --allow link:uplink",
        "permission denied: needs publish:tcp/9000; rerun with --allow publish:tcp/9000",
        "permission denied: needs sysctl:net.ipv4.conf.all.forwarding",
        "rolled back: ok",
        "AUDIT ",
        "chain intact",
    ] {
        assert!(o.contains(expected), "missing {expected:?} in\n{o}\n{}", out.stderr);
    }
    assert_eq!(o.lines().filter(|l| l.starts_with("AUDIT ")).count(), 4, "{o}");
    assert!(o.lines().any(|l| l.starts_with("AUDIT ") && l.contains("ip link add eth9 type bridge")), "{o}");
}

#[test]
fn deny_beats_allow_all() {
    let out = sandboxed(
        &format!(
            r#"
before=$(snapshot)
expect_fail $NETSH run --allow-all --deny link:eth9 {MIS} -- bridge-then-eth9
settled_to "$before" && echo "unchanged: ok"
"#
        ),
        30,
    );
    out.assert_ok();
    assert!(out.stdout.contains("link:eth9 is denied by --deny link:eth9"), "{}", out.stdout);
    assert!(out.stdout.contains("unchanged: ok"), "{}", out.stdout);
}

#[test]
fn failed_trapped_and_timed_out_runs_are_rolled_back_exactly() {
    let out = sandboxed(
        &format!(
            r#"
before=$(snapshot)
sysctl -qw net.ipv4.ip_forward=0
for mode in half-fail half-trap half-loop; do
  expect_fail $NETSH run --allow-all --timeout 1s {MIS} -- $mode
  settled_to "$before" && echo "$mode: restored"
  [ "$(sysctl -n net.ipv4.ip_forward)" = 0 ] && echo "$mode: sysctl restored"
  [ ! -e /etc/netns/half-ns ] && echo "$mode: files removed"
done
$NETSH runs | grep -c rolled-back | sed 's/^/ROLLED /'
$NETSH run --allow-all --no-rollback {MIS} -- half-fail 2>&1 | grep -o 'keeps its partial changes' || true
ip netns list | grep -q half-ns && echo "kept: ok"
"#
        ),
        60,
    );
    out.assert_ok();
    let o = &out.stdout;
    for mode in ["half-fail", "half-trap", "half-loop"] {
        for what in ["restored", "sysctl restored", "files removed"] {
            assert!(o.contains(&format!("{mode}: {what}")), "missing {mode}: {what} in\n{o}\n{}", out.stderr);
        }
    }
    assert!(o.contains("ROLLED 3") && o.contains("keeps its partial changes") && o.contains("kept: ok"), "{o}");
}

#[test]
fn a_killed_run_is_reported_and_undone() {
    let out = sandboxed(
        &format!(
            r#"
before=$(snapshot)
$NETSH run --allow-all --timeout 30s {MIS} -- half-loop &
pid=$!
for _ in $(seq 50); do ip link show br-half >/dev/null 2>&1 && ip -n half-ns link show eth0 >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.3
kill -9 $pid
wait $pid 2>/dev/null || true
ip link show br-half >/dev/null && echo "left behind: ok"
$NETSH show >/dev/null 2>report.txt
cat report.txt
id=$($NETSH runs --json | python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin) if r["state"]=="interrupted"][0])')
$NETSH undo $id >/dev/null
settled_to "$before" && echo "kernel back as before: ok"
# The namespace is made again by hand: a second undo must leave it alone.
ip netns add half-ns
$NETSH undo $id >/dev/null && ip netns list | grep -q half-ns && echo "second undo changed nothing: ok"
ip netns del half-ns
$NETSH runs --state undone | grep -q $id && echo "state undone: ok"
"#
        ),
        60,
    );
    out.assert_ok();
    let o = &out.stdout;
    for expected in [
        "left behind: ok",
        "was interrupted with",
        "`netsh undo",
        "kernel back as before: ok",
        "second undo changed nothing: ok",
        "state undone: ok",
    ] {
        assert!(o.contains(expected), "missing {expected:?} in\n{o}\n{}", out.stderr);
    }
}

#[test]
fn confirm_keeps_and_no_confirm_reverts() {
    let out = sandboxed(
        &format!(
            r#"
before=$(snapshot)
expect_fail $NETSH run --allow-all --confirm 1s {MIS} -- changes
settled_to "$before" && echo "unconfirmed: reverted"
$NETSH run --allow-all --confirm 20s {MIS} -- changes 2>confirm.txt &
pid=$!
for _ in $(seq 100); do grep -q 'netsh confirm' confirm.txt && break; sleep 0.1; done
id=$(grep -o 'netsh confirm [0-9a-f-]*' confirm.txt | head -1 | cut -d' ' -f3)
$NETSH confirm $id
wait $pid && echo "confirmed run exited 0"
ip link show br-half >/dev/null && echo "confirmed: kept"
$NETSH runs | grep $id | grep -q confirmed && echo "state: confirmed"
"#
        ),
        60,
    );
    out.assert_ok();
    let o = &out.stdout;
    for expected in [
        "not confirmed within 1s",
        "unconfirmed: reverted",
        "confirmed run exited 0",
        "confirmed: kept",
        "state: confirmed",
    ] {
        assert!(o.contains(expected), "missing {expected:?} in\n{o}\n{}", out.stderr);
    }
}

#[test]
fn audit_verify_finds_tampering() {
    let out = sandboxed(
        &format!(
            r#"
$NETSH run --allow-all {MIS} -- changes
log=$NETSH_STATE_DIR/audit.jsonl
cp $log good
$NETSH audit verify
sed -i '2s/br-half/br-evil/' $log; expect_fail $NETSH audit verify; cp good $log
sed -i '3d' $log; expect_fail $NETSH audit verify; cp good $log
sed -i '2{{h;d}};3{{G}}' $log; expect_fail $NETSH audit verify; cp good $log
head -c -20 good > $log; expect_fail $NETSH audit verify; cp good $log
$NETSH audit --run nope | wc -l | sed 's/^/NONE /'
$NETSH audit --since 1h | wc -l | sed 's/^/RECENT /'
"#
        ),
        30,
    );
    out.assert_ok();
    let o = &out.stdout;
    for expected in [
        "chain intact",
        "line 2 was edited",
        "line 3 does not follow line 2",
        "line 2 does not follow line 1",
        "is truncated",
        "NONE 0",
    ] {
        assert!(o.contains(expected), "missing {expected:?} in\n{o}\n{}", out.stderr);
    }
    assert!(!o.contains("RECENT 0"), "{o}");
}

/// A call without the moment a record was written (`created=...` in a
/// stored value): the one thing a plan cannot know before its run.
fn timeless(call: &serde_json::Value) -> serde_json::Value {
    let mut call = call.clone();
    if let Some(value) = call["value"].as_str() {
        let words: Vec<&str> =
            value.split(' ').map(|w| if w.starts_with("created=") { "created=T" } else { w }).collect();
        call["value"] = words.join(" ").into();
    }
    call
}

#[test]
fn plan_changes_nothing_and_matches_the_real_run_op_for_op() {
    let out = sandboxed(
        r#"
ARGS="create mynet --subnet 172.25.0.0/16 ; connect mynet c1 --publish 8080:80 ; connect mynet c2"
before=$(snapshot)
set +e
$NETSH plan $DB_GRANTS $RECIPES/docker-bridge.wasm --json -- $ARGS > plan.json
echo "plan exit: $?"
$NETSH plan --allow link:br-* $RECIPES/docker-bridge.wasm -- $ARGS | grep '^grants missing' | sed 's/^/MISSING /'
set -e
[ "$before" = "$(snapshot)" ] && echo "plan changed nothing"
$DB $ARGS
id=$($NETSH runs --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
$NETSH audit --run $id --json > audit.jsonl
python3 $TESTDIR/plan_check.py plan.json $NETSH
set +e; $NETSH plan $DB_GRANTS $RECIPES/docker-bridge.wasm -- ls >/dev/null; echo "read-only plan exit: $?"; set -e
echo "PLAN $(tr -d '\n' < plan.json)"
while read -r line; do echo "AUDIT $line"; done < audit.jsonl
"#,
        60,
    );
    out.assert_ok();
    let o = &out.stdout;
    assert!(
        o.contains("plan exit: 3") && o.contains("plan changed nothing") && o.contains("read-only plan exit: 0"),
        "{o}"
    );
    let missing = o.lines().find(|l| l.starts_with("MISSING ")).unwrap_or_default();
    assert!(missing.contains("--allow 'link:c1/eth0'") && missing.contains("--allow 'publish:tcp/8080'"), "{o}");
    let plan: serde_json::Value =
        serde_json::from_str(o.lines().find_map(|l| l.strip_prefix("PLAN ")).unwrap()).unwrap();
    let planned: Vec<serde_json::Value> =
        plan["ops"].as_array().unwrap().iter().map(|op| timeless(&op["call"])).collect();
    let audited: Vec<serde_json::Value> = o
        .lines()
        .filter_map(|l| l.strip_prefix("AUDIT "))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["decision"] == "allow")
        .map(|e| timeless(&e["call"]))
        .collect();
    assert!(planned.len() > 20, "{plan}");
    assert!(!o.contains("KERNEL-"), "planned changes missing from the kernel:\n{o}");
    assert!(o.contains(&format!("KERNEL OK {} of {}", planned.len(), planned.len())), "{o}");
    assert_eq!(planned.len(), audited.len(), "plan and audit differ in length");
    for (p, a) in planned.iter().zip(&audited) {
        assert_eq!(p, a);
    }
    assert!(plan["grants_missing"].as_array().unwrap().is_empty(), "{plan}");
}

#[test]
fn plugins_run_by_name_and_lose_pinned_grants_when_their_bytes_change() {
    let out = sandboxed(
        r#"
$NETSH plugin add $GUESTS/misbehave.wasm --name mb
$NETSH plugin ls | grep '^mb ' >/dev/null && echo "listed: ok"
$NETSH plugin info mb | grep 'sha256:' >/dev/null && echo "info: ok"
sha=$($NETSH plugin ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["mb"]["sha256"])')
export XDG_CONFIG_HOME=$work/config
mkdir -p $XDG_CONFIG_HOME/netsh
printf '[[pin]]\nsha256 = "%s"\nallow = ["link:br-*"]\n' $sha > $XDG_CONFIG_HOME/netsh/policy.toml
$NETSH mb bridge && ip link show br-ok >/dev/null && echo "pinned grant applies: ok"
ip link del br-ok
printf '\0\5\4test' >> $NETSH_STATE_DIR/plugins/blobs/$sha.wasm
expect_fail $NETSH mb bridge
ip link show br-ok >/dev/null 2>&1 && echo "LEAK" || echo "changed digest: denied"
expect_fail $NETSH nosuchplugin
$NETSH plugin rm mb
$NETSH plugin ls | grep mb >/dev/null && echo "LEFTOVER" || echo "removed: ok"
"#,
        60,
    );
    out.assert_ok();
    let o = &out.stdout;
    for expected in [
        "mb installed: sha256",
        "listed: ok",
        "info: ok",
        "pinned grant applies: ok",
        "file changed since it was added",
        "needs link:br-ok; rerun with --allow link:br-ok",
        "changed digest: denied",
        "not a netsh command nor an installed plugin",
        "removed: ok",
    ] {
        assert!(o.contains(expected), "missing {expected:?} in\n{o}\n{}", out.stderr);
    }
    assert!(!o.contains("LEAK") && !o.contains("LEFTOVER"), "{o}");
}

#[test]
fn ctrl_c_rolls_a_run_back() {
    let out = sandboxed(
        r#"
before=$(snapshot)
$NETSH run --allow-all --timeout 30s $GUESTS/misbehave.wasm -- half-loop 2>err.txt &
pid=$!
for _ in $(seq 50); do ip link show br-half >/dev/null 2>&1 && ip -n half-ns link show eth0 >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.3
kill -INT $pid
wait $pid && echo "UNEXPECTED SUCCESS" || echo "interrupted run failed: ok"
cat err.txt
settled_to "$before" && echo "rolled back: ok"
"#,
        60,
    );
    out.assert_ok();
    let o = &out.stdout;
    for expected in ["interrupted run failed: ok", "interrupted (Ctrl-C", "rolled back", "rolled back: ok"] {
        assert!(o.contains(expected), "missing {expected:?} in\n{o}\n{}", out.stderr);
    }
}
