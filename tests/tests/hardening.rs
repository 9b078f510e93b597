//! Trust boundaries, the write-ahead journal, the audit log's head, and
//! errors that keep their cause: each test breaks one promise on purpose.

use netsh_e2e::sandboxed;

const MIS: &str = "$GUESTS/misbehave.wasm";

fn assert_all(out: &netsh_e2e::Outcome, expected: &[&str]) {
    out.assert_ok();
    for e in expected {
        assert!(out.stdout.contains(e), "missing {e:?} in\n{}\n--- stderr\n{}", out.stdout, out.stderr);
    }
}

#[test]
fn an_untrusted_or_forged_compile_cache_is_ignored() {
    let out = sandboxed(
        &format!(
            r#"
export NETSH_CACHE_DIR=$work/cache
$NETSH run --allow link:br-ok {MIS} -- bridge 2>first.txt
ip link del br-ok
art=$(find $NETSH_CACHE_DIR -name "*.cwasm")
[ -n "$art" ] && [ -f "${{art%.cwasm}}.mac" ] && echo "cached with a mac: ok"
# Someone who can write the artifact (not the key) swaps its bytes.
printf 'forged native code' > $art
$NETSH run --allow link:br-ok {MIS} -- bridge 2>forged.txt && ip link show br-ok >/dev/null && echo "forged artifact: recompiled and ran"
grep -o 'its MAC does not match' forged.txt
ip link del br-ok
chmod 777 $NETSH_CACHE_DIR
$NETSH run --allow link:br-ok {MIS} -- bridge 2>open.txt && echo "world-writable cache: still ran"
grep -o 'is not trusted' open.txt
grep -c . first.txt | sed 's/^/FIRST-RUN-WARNINGS /' || true
"#
        ),
        60,
    );
    assert_all(
        &out,
        &[
            "cached with a mac: ok",
            "forged artifact: recompiled and ran",
            "its MAC does not match",
            "world-writable cache: still ran",
            "is not trusted",
        ],
    );
    assert!(!out.stdout.contains("FIRST-RUN-WARNINGS 1"), "a clean first run warned: {}", out.stdout);
}

#[test]
fn names_that_reach_netsh_s_own_namespace_are_refused() {
    let out = sandboxed(
        r#"
G="--allow netns:* --allow link:*/*"
expect_fail $NETSH $G -c "netns attach alias $$"
ip netns add named
ip netns exec named sleep 30 &
sleeper=$!
sleep 0.2
expect_fail $NETSH $G -c "netns attach second $sleeper"
# A name planted by someone else that leads to this (netsh's) namespace.
touch /run/netns/planted
mount --bind /proc/$$/ns/net /run/netns/planted
expect_fail $NETSH $G -c "-n planted link set lo down"
ip link show lo | grep -q 'UP' && echo "host lo untouched: ok"
kill $sleeper
$DB create pidnet --subnet 172.24.0.0/24
expect_fail $DB connect pidnet self --pid $$
ip netns list | grep -qx self && echo "LEFTOVER self" || true
"#,
        60,
    );
    assert_all(
        &out,
        &[
            "the namespace of process",
            "is netsh's own network namespace under another name",
            "namespace is already named named; use that name",
            "namespace planted is netsh's own network namespace",
            "host lo untouched: ok",
        ],
    );
    assert!(!out.stdout.contains("LEFTOVER"), "{}", out.stdout);
}

#[test]
fn a_kill_or_ctrl_c_during_host_calls_leaves_nothing_unjournaled() {
    let out = sandboxed(
        &format!(
            r#"
before=$(snapshot)
for delay in 0.08 0.12 0.16; do
  $NETSH run --allow 'link:br-m*' --allow link:lo --timeout 30s {MIS} -- many 2>/dev/null &
  pid=$!
  sleep $delay
  kill -9 $pid; wait $pid 2>/dev/null || true
  made=$(ip -o link show type bridge | grep -c br-m || true)
  id=$($NETSH runs --json | python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin) if r["state"]=="interrupted"][-1])')
  $NETSH undo $id >/dev/null
  settled_to "$before" && echo "killed with $made bridge(s): undone"
done
$NETSH run --allow 'link:br-m*' --allow link:lo --timeout 30s {MIS} -- many 2>err.txt &
pid=$!
sleep 0.12
kill -INT $pid
wait $pid && echo "UNEXPECTED SUCCESS" || true
settled_to "$before" && echo "ctrl-c during calls: rolled back"
grep -o 'interrupted (Ctrl-C' err.txt
"#
        ),
        90,
    );
    out.assert_ok();
    assert_eq!(out.stdout.matches(": undone").count(), 3, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("with 0 bridge(s)"), "a kill landed before any call: {}", out.stdout);
    assert!(
        out.stdout.contains("ctrl-c during calls: rolled back") && out.stdout.contains("interrupted (Ctrl-C"),
        "{}",
        out.stdout
    );
}

#[test]
fn undo_is_idempotent_and_refuses_to_claim_what_it_cannot_read() {
    let out = sandboxed(
        &format!(
            r#"
before=$(snapshot)
$NETSH run --allow-all {MIS} -- changes 2>/dev/null
id=$($NETSH runs --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
$NETSH undo $id
settled_to "$before" && echo "first undo: clean"
# Someone makes br-half again; a second undo must not take it away.
ip link add br-half type bridge
$NETSH undo $id
ip link show br-half >/dev/null && echo "second undo: changed nothing"
ip link del br-half
$NETSH run --allow-all {MIS} -- changes 2>/dev/null
id2=$($NETSH runs --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
echo '{{"this is": not json' >> $NETSH_STATE_DIR/runs/$id2.jsonl
expect_fail $NETSH undo $id2
$NETSH runs | grep $id2 | grep -q undo-incomplete && echo "state: undo-incomplete"
"#
        ),
        60,
    );
    assert_all(
        &out,
        &[
            "first undo: clean",
            "was already undone; nothing to do",
            "second undo: changed nothing",
            "could not be read",
            "state: undo-incomplete",
        ],
    );
}

#[test]
fn interrupted_runs_are_reported_by_every_front_end() {
    let out = sandboxed(
        &format!(
            r#"
$NETSH run --allow-all --timeout 30s {MIS} -- half-loop 2>/dev/null &
pid=$!
for _ in $(seq 50); do ip link show br-half >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.3
kill -9 $pid; wait $pid 2>/dev/null || true
$NETSH -c 'netns ls' 2>&1 >/dev/null | grep -o 'was interrupted' | sed 's/^/-c: /'
echo 'netns ls' | $NETSH 2>&1 >/dev/null | grep -o 'was interrupted' | sed 's/^/stdin: /'
$NETSH show 2>&1 >/dev/null | grep -o 'was interrupted' | sed 's/^/show: /'
"#
        ),
        60,
    );
    assert_all(&out, &["-c: was interrupted", "stdin: was interrupted", "show: was interrupted"]);
}

#[test]
fn the_audit_log_head_catches_truncation_and_deletion_and_sandboxes_stay_out() {
    let out = sandboxed(
        &format!(
            r#"
$NETSH run --allow-all {MIS} -- changes 2>/dev/null
log=$NETSH_STATE_DIR/audit.jsonl
cp $log good
head -n -2 good > $log; expect_fail $NETSH audit verify; cp good $log
rm $log; expect_fail $NETSH audit verify; cp good $log
$NETSH audit verify
lines=$(wc -l < $log)
$NETSH run --sandbox --allow-all {MIS} -- bridge >/dev/null 2>&1
[ "$(wc -l < $log)" = "$lines" ] && echo "sandbox run: not in the real log"
"#
        ),
        60,
    );
    assert_all(
        &out,
        &["the last 2 line(s) were removed", "the log was deleted", "chain intact", "sandbox run: not in the real log"],
    );
}

#[test]
fn io_errors_keep_their_errno() {
    let out = sandboxed(
        &format!(
            r#"
mkdir -p $NETSH_STATE_DIR/runs/20260101-000000-abcd.jsonl
expect_fail $NETSH undo 20260101-000000-abcd
rm -r $NETSH_STATE_DIR
mkdir -p $NETSH_STATE_DIR/audit.jsonl
expect_fail $NETSH run --allow link:br-ok {MIS} -- bridge
ip link show br-ok >/dev/null 2>&1 && echo "LEFTOVER br-ok" || true
"#
        ),
        60,
    );
    out.assert_ok();
    assert!(out.stdout.contains("Is a directory"), "{}", out.stdout);
    assert!(!out.stdout.contains("no run 20260101"), "{}", out.stdout);
    assert!(!out.stdout.contains("errno 0"), "{}", out.stdout);
    assert!(!out.stdout.contains("LEFTOVER"), "{}", out.stdout);
}
