//! `netsh agent`: commands handed to the long-lived process behave exactly
//! as when netsh runs them itself, concurrent callers are served one after
//! another, `--confirm` deadlines outlive the caller, and the agent serves
//! no one it should not.

use netsh_e2e::sandboxed;

/// Start an agent on a private socket; `$AGENT_LOG` holds one line per command.
const START_AGENT: &str = r#"
export NETSH_AGENT_SOCKET=$work/agent.sock
AGENT_LOG=$work/agent.log
start_agent() {
  $NETSH agent 2>>$AGENT_LOG & AGENT=$!
  for _ in $(seq 100); do [ -S $NETSH_AGENT_SOCKET ] && return 0; sleep 0.05; done
  echo "the agent did not start"; cat $AGENT_LOG; exit 1
}
trap '{ kill $AGENT && wait $AGENT; } 2>/dev/null || true; rm -rf "$work"' EXIT
served() { grep -c '^netsh agent: pid' $AGENT_LOG || true; }
start_agent
"#;

fn with_agent(script: &str, limit_secs: u32) -> netsh_e2e::Outcome {
    sandboxed(&format!("{START_AGENT}\n{script}"), limit_secs)
}

#[test]
fn commands_through_the_agent_print_and_exit_as_netsh_does() {
    let out = with_agent(
        r#"
$DB create n1 >/dev/null
# Each command both ways: stdout, stderr and exit code must be identical.
both() {
  local a b
  a=$("$@" 2>&1; echo "exit $?") ; b=$(NETSH_AGENT_SOCKET=/nonexistent "$@" 2>&1; echo "exit $?")
  if [ "$a" = "$b" ]; then echo "same: $2 (${a##*exit })"; else echo "DIFFERENT: $*"; diff <(echo "$a") <(echo "$b"); fi
}
before=$(served)
both $NETSH show
both $NETSH show --json
both $NETSH inspect $RECIPES/docker-bridge.wasm
both $NETSH run --bogus x
both $NETSH run $RECIPES/missing.wasm
both $NETSH run $RECIPES/docker-bridge.wasm -- ls
both $DB connect nonet c1
both $DB create
both $NETSH --allow 'link:*' link ls
both $NETSH kv ls docker-bridge/
grep -c '`show` exited 0\|`inspect .*` exited 0\|`run .* ls` exited 0' $AGENT_LOG | sed 's/^/served: /'
# Piped commands: the agent gets the caller's stdin.
printf 'link add br-piped type bridge\nlink ls\n' | $NETSH --allow 'link:br-piped' | grep -c br-piped | sed 's/^/piped: /'
ip -o link show br-piped >/dev/null && echo "piped bridge: made"
# A container through the agent reaches the outside and is reached on its published port.
make_outside
ip netns add c1
$DB connect n1 c1 --publish 8080:80
serve c1 80
echo "published: $(fetch outside 10.200.0.1 8080)"
ip netns exec c1 ping -c1 -W2 10.200.0.2 >/dev/null && echo "c1 reaches the outside"
stop_servers
grep -c "connect n1 c1 --publish 8080:80\` exited 0" $AGENT_LOG | sed 's/^/agent ran connect: /'
$DB disconnect n1 c1 >/dev/null; ip netns del c1
$DB rm n1 >/dev/null
echo 'link del br-piped' | $NETSH --allow 'link:br-piped'
ip -o link | grep -c 'br-\|veth' | sed 's/^/left: /' || true
"#,
        120,
    );
    out.assert_ok();
    let o = &out.stdout;
    assert!(!o.contains("DIFFERENT"), "{o}\n{}", out.stderr);
    out.assert_has(&[
        "same: show (0)",
        "same: show (0)",
        "same: inspect (0)",
        "same: run (2)",
        "same: run (1)",
        "same: run (0)",
        "served: 3",
        "piped: 1",
        "piped bridge: made",
        "published: c1 saw 10.200.0.2",
        "c1 reaches the outside",
        "agent ran connect: 1",
        "left: 0",
    ]);
}

#[test]
fn concurrent_callers_are_served_one_after_another() {
    let out = with_agent(
        r#"
$DB create busy --subnet 172.27.0.0/24 >/dev/null
pids=()
for i in $(seq 1 12); do $DB connect busy c$i --publish $((7100 + i)):80 >/dev/null 2>err.$i & pids+=($!); done
failed=0; for p in "${pids[@]}"; do wait $p || failed=$((failed + 1)); done
echo "failed: $failed"
for i in $(seq 1 12); do ip -n c$i -o -4 addr show eth0 | awk '{print $4}'; done | sort -u | wc -l | sed 's/^/distinct addresses: /'
echo "dnat entries: $(dnat_entries | wc -l)"
echo "agent ran connects: $(grep -c '`run .* connect busy c[0-9]* .* exited 0' $AGENT_LOG)"
"#,
        120,
    );
    out.assert_ok();
    out.assert_has(&["failed: 0", "distinct addresses: 12", "dnat entries: 12", "agent ran connects: 12"]);
}

#[test]
fn a_confirm_deadline_outlives_its_caller() {
    let out = with_agent(
        &format!(
            r#"
before=$(snapshot)
# The caller returns at once; the agent reverts the run at the deadline.
$NETSH run --allow-all --confirm 2s {MIS} -- changes 2>kept.txt && echo "caller returned: 0"
grep -o 'netsh confirm [0-9a-f-]*' kept.txt | head -1 | sed 's/[0-9a-f-]*$/ID/'
ip link show br-half >/dev/null && echo "before the deadline: applied"
settled_to "$before" && echo "after the deadline: reverted"
grep -c 'reverted' $AGENT_LOG | sed 's/^/agent log reverted: /'
# Confirmed before the deadline: kept, even after it.
$NETSH run --allow-all --confirm 2s {MIS} -- changes 2>kept.txt
id=$(grep -o 'netsh confirm [0-9a-f-]*' kept.txt | head -1 | cut -d' ' -f3)
$NETSH confirm $id
sleep 3
ip link show br-half >/dev/null && echo "confirmed: kept"
$NETSH runs | grep $id | grep -q confirmed && echo "state: confirmed"
"#,
            MIS = "$GUESTS/misbehave.wasm"
        ),
        60,
    );
    out.assert_ok();
    out.assert_has(&[
        "caller returned: 0",
        "netsh confirm ID",
        "before the deadline: applied",
        "after the deadline: reverted",
        "agent log reverted: 1",
        "confirmed: kept",
        "state: confirmed",
    ]);
}

#[test]
fn a_stopped_agent_rolls_back_the_command_in_flight() {
    let out = with_agent(
        &format!(
            r#"
before=$(snapshot)
$NETSH run --allow-all --timeout 30s {MIS} -- half-loop >loop.out 2>&1 & caller=$!
for _ in $(seq 100); do ip link show br-half >/dev/null 2>&1 && break; sleep 0.05; done
kill -TERM $AGENT; wait $AGENT; echo "agent exit: $?"
rc=0; wait $caller || rc=$?; echo "caller exit: $rc"; cat loop.out
settled_to "$before" && echo "rolled back"
[ -e $NETSH_AGENT_SOCKET ] || echo "socket removed"
# Without an agent, netsh runs commands itself.
$NETSH run --allow-all {MIS} -- bridge >/dev/null && ip link show br-ok >/dev/null && echo "ran without the agent"
"#,
            MIS = "$GUESTS/misbehave.wasm"
        ),
        60,
    );
    out.assert_ok();
    out.assert_has(&["agent exit: 0", "caller exit: 1", "rolled back", "socket removed", "ran without the agent"]);
}

#[test]
fn the_agent_serves_root_only_and_only_its_own_state() {
    let out = with_agent(
        r#"
chmod 0666 $NETSH_AGENT_SOCKET
chmod 0755 $work
expect_fail setpriv --reuid 65534 --regid 65534 --clear-groups $NETSH show | grep -o 'serves root only, and this caller is uid 65534'
# Another state directory: the caller runs the command itself.
NETSH_STATE_DIR=$work/other $NETSH show >/dev/null && echo "other state: ran"
echo "served: $(served)"
# A caller in another network namespace runs the command itself.
unshare --net $NETSH show | grep -c br- | sed 's/^/bridges seen from a new namespace: /' || true
echo "served: $(served)"
"#,
        60,
    );
    out.assert_ok();
    out.assert_has(&[
        "serves root only, and this caller is uid 65534",
        "other state: ran",
        "served: 0",
        "bridges seen from a new namespace: 0",
    ]);
    assert!(!out.stdout.contains("served: 1"), "{}", out.stdout);
}

#[test]
fn a_killed_agent_leaves_a_run_that_is_reported_and_undone() {
    let out = with_agent(
        &format!(
            r#"
before=$(snapshot)
$NETSH run --allow-all --timeout 30s {MIS} -- half-loop >loop.out 2>&1 & caller=$!
for _ in $(seq 100); do ip -n half-ns link show eth0 >/dev/null 2>&1 && break; sleep 0.05; done
sleep 0.3
kill -9 $AGENT; wait $AGENT 2>/dev/null || true
rc=0; wait $caller || rc=$?; echo "caller exit: $rc"
grep -o 'the agent went away' loop.out | head -1
ip link show br-half >/dev/null && echo "left behind: ok"
# The dead agent's socket is still there: callers run commands themselves.
id=$($NETSH runs --json | python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin) if r["state"]=="interrupted"][0])')
$NETSH undo $id >/dev/null
settled_to "$before" && echo "kernel back as before: ok"
"#,
            MIS = "$GUESTS/misbehave.wasm"
        ),
        60,
    );
    out.assert_ok();
    out.assert_has(&["caller exit: 1", "the agent went away", "left behind: ok", "kernel back as before: ok"]);
}
