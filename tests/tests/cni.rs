//! netsh as a CNI plugin, driven exactly as libcni drives a plugin: the
//! command and container in the environment (and nothing else: `env -i`),
//! the network configuration on stdin, the result or error JSON on stdout.

use netsh_e2e::{Firewall, sandboxed_on};

/// `cni CMD ID NETNS [VAR=VALUE...]` runs the plugin with the configuration
/// in `$CONF` (a file); `conf [EXTRA-JSON-FIELDS]` writes one for network podnet.
const DRIVER: &str = r#"
grants=$(python3 -c 'import json,sys; a=sys.argv[1].split(); print(json.dumps(a[1::2]))' "$DB_GRANTS")
conf() {
  cat >$work/conf.json <<EOF
{"cniVersion": "1.0.0", "name": "podnet", "type": "netsh", "recipe": "$RECIPES/docker-bridge.wasm",
 "stateDir": "$NETSH_STATE_DIR", "firewall": "$FW", "grants": $grants ${1:+, $1}}
EOF
  CONF=$work/conf.json
}
cni() {
  local cmd=$1 id=$2 ns=$3; shift 3
  env -i CNI_COMMAND=$cmd CNI_CONTAINERID=$id ${ns:+CNI_NETNS=$ns} CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin "$@" $NETSH <$CONF
}
# Print an expression of the JSON on stdin (`d`); a tuple as words.
field() {
  python3 -c 'import json,sys; d=json.load(sys.stdin); r=eval(sys.argv[1], {}, {"d": d}); print(" ".join(map(str, r)) if isinstance(r, tuple) else r)' "$1"
}
# A container id as runtimes make them: 64 hex digits.
ID() { printf 'container %s' $1 | sha256sum | cut -c1-64; }
"#;

fn cni_script(fw: Firewall, script: &str, limit_secs: u32) -> netsh_e2e::Outcome {
    sandboxed_on(fw, &format!("{DRIVER}\n{script}"), limit_secs)
}

#[test]
fn add_check_del_as_libcni_does() {
    for fw in Firewall::BOTH {
        let out = cni_script(
            fw,
            r#"
make_outside
before=$(snapshot)
$DB create podnet --subnet 10.89.0.0/24 >/dev/null
conf '"runtimeConfig": {"portMappings": [{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}], "aliases": {"podnet": ["web", "www"]}}'
cni VERSION "" "" | field 'd["supportedVersions"]'
ip netns add netns-a
cni ADD $(ID 1) /run/netns/netns-a >add.json
field 'd["cniVersion"], d["ips"][0]["address"], d["ips"][0]["gateway"], d["ips"][0]["interface"]' <add.json
field '[(i["name"][:4], i.get("sandbox")) for i in d["interfaces"]]' <add.json
field 'd["routes"]' <add.json
ip -n netns-a -o -4 addr show eth0 | awk '{print "kernel:", $4}'
serve netns-a 80
echo "published: $(fetch outside 10.200.0.1 8081)"
ip netns exec netns-a ping -c1 -W2 10.200.0.2 >/dev/null && echo "reaches the outside"
stop_servers
cni CHECK $(ID 1) /run/netns/netns-a && echo "check: ok"
ip -n netns-a addr flush dev eth0
cni CHECK $(ID 1) /run/netns/netns-a >check.json && echo "UNEXPECTED: check passed" || field '"check after flush:", d["code"], d["msg"]' <check.json
# An ADD that fails (its port is taken) leaves nothing; the runtime then sends DEL.
ip netns add netns-b
mid=$(snapshot)
cni ADD $(ID 2) /run/netns/netns-b >fail.json && echo "UNEXPECTED: add passed" || field '"failed add:", d["code"]' <fail.json
[ "$(snapshot)" = "$mid" ] && echo "failed add left nothing"
cni DEL $(ID 2) /run/netns/netns-b && echo "del after failed add: ok"
# DEL after the runtime deleted the namespace, with no CNI_NETNS at all, and twice.
ip netns del netns-a
cni DEL $(ID 1) "" && echo "del without netns: ok"
cni DEL $(ID 1) "" && echo "second del: ok"
ip netns del netns-b
$DB rm podnet >/dev/null
settled_to "$before" && echo "clean after teardown"
"#,
            120,
        );
        out.assert_ok();
        let o = &out.stdout;
        for expected in [
            "['1.0.0', '1.1.0']",
            "1.0.0 10.89.0.2/24 10.89.0.1 1",
            "[('veth', None), ('eth0', '/run/netns/netns-a')]",
            "[{'dst': '0.0.0.0/0', 'gw': '10.89.0.1'}]",
            "kernel: 10.89.0.2/24",
            "published: netns-a saw 10.200.0.2",
            "reaches the outside",
            "check: ok",
            "check after flush: 101",
            "failed add: 102",
            "failed add left nothing",
            "del after failed add: ok",
            "del without netns: ok",
            "second del: ok",
            "clean after teardown",
        ] {
            assert!(o.contains(expected), "{fw:?}: missing {expected:?} in\n{o}\n{}", out.stderr);
        }
    }
}

#[test]
fn dual_stack_adds_return_both_families_and_check_both() {
    let out = cni_script(
        Firewall::Nftables,
        r#"
make_outside
before=$(snapshot)
$DB create podnet --ipv6 --subnet 10.89.0.0/24 --subnet fd00:89::/64 >/dev/null
conf '"runtimeConfig": {"ips": ["fd00:89::9/64"]}'
ip netns add netns-a
cni ADD $(ID 1) /run/netns/netns-a >add.json
field '[(i["address"], i["gateway"]) for i in d["ips"]]' <add.json
field 'd["routes"]' <add.json
ip netns exec netns-a ping -6 -c1 -W2 fd00:200::2 >/dev/null && echo "reaches the outside over IPv6"
cni CHECK $(ID 1) /run/netns/netns-a && echo "check: ok"
ip -n netns-a addr del fd00:89::9/64 dev eth0
cni CHECK $(ID 1) /run/netns/netns-a >check.json && echo "UNEXPECTED: check passed" || field '"check:", d["msg"]' <check.json
cni DEL $(ID 1) /run/netns/netns-a && echo "del: ok"
ip netns del netns-a
$DB rm podnet >/dev/null
settled_to "$before" && echo "clean after teardown"
"#,
        60,
    );
    out.assert_ok().assert_has(&[
        "[('10.89.0.2/24', '10.89.0.1'), ('fd00:89::9/64', 'fd00:89::1')]",
        "[{'dst': '0.0.0.0/0', 'gw': '10.89.0.1'}, {'dst': '::/0', 'gw': 'fd00:89::1'}]",
        "reaches the outside over IPv6",
        "check: ok",
        "lost its address fd00:89::9/64",
        "del: ok",
        "clean after teardown",
    ]);
}

#[test]
fn concurrent_adds_status_and_gc() {
    let out = cni_script(
        Firewall::Nftables,
        r#"
$DB create podnet --subnet 10.89.0.0/24 >/dev/null
conf
pids=()
for i in $(seq 1 8); do ip netns add n$i; cni ADD $(ID $i) /run/netns/n$i >add.$i & pids+=($!); done
failed=0; for p in "${pids[@]}"; do wait $p || failed=$((failed + 1)); done
echo "failed: $failed"
for i in $(seq 1 8); do ip -n n$i -o -4 addr show eth0 | awk '{print $4}'; done | sort -u | wc -l | sed 's/^/distinct addresses: /'
# STATUS and GC exist from spec 1.1 on.
sed -i 's/"1.0.0"/"1.1.0"/' $CONF
cni STATUS "" "" && echo "status: ok"
# GC: the runtime still has containers 1-3; the rest are released.
conf '"cni.dev/valid-attachments": [{"containerID": "'$(ID 1)'", "ifname": "eth0"}, {"containerID": "'$(ID 2)'", "ifname": "eth0"}, {"containerID": "'$(ID 3)'", "ifname": "eth0"}]'
sed -i 's/"1.0.0"/"1.1.0"/' $CONF
cni GC "" "" && echo "gc: ok"
for i in $(seq 1 8); do ip -n n$i -o link show eth0 >/dev/null 2>&1 && echo "n$i: attached" || echo "n$i: released"; done
"#,
        120,
    );
    out.assert_ok();
    out.assert_has(&[
        "failed: 0",
        "distinct addresses: 8",
        "status: ok",
        "gc: ok",
        "n1: attached",
        "n3: attached",
        "n4: released",
        "n8: released",
    ]);
}

#[test]
fn bad_calls_get_cni_errors_and_change_nothing() {
    let out = cni_script(
        Firewall::Nftables,
        r#"
$DB create podnet --subnet 10.89.0.0/24 >/dev/null
ip netns add na
before=$(snapshot)
echo '{"cniVersion": "1.0.0", "name": ' >$work/bad.json; CONF=$work/bad.json
cni ADD $(ID 1) /run/netns/na | field '"malformed:", d["code"]' || true
conf; sed -i 's/"1.0.0"/"0.2.0"/' $CONF
cni ADD $(ID 1) /run/netns/na | field '"old version:", d["code"]' || true
conf; sed -i 's/"recipe": "[^"]*",//' $CONF
cni ADD $(ID 1) /run/netns/na | field '"no recipe:", d["code"], d["msg"][:40]' || true
conf; sed -i 's/"grants": \[[^]]*\]/"grants": []/' $CONF
cni ADD $(ID 1) /run/netns/na | field '"no grants:", d["code"], "allow" in d["details"]' || true
conf '"network": "nonet"'
cni ADD $(ID 1) /run/netns/na | field '"no network:", d["code"], "create it first" in d["msg"]' || true
conf '"sha256": "'$(printf '0%.0s' $(seq 64))'"'
cni ADD $(ID 1) /run/netns/na | field '"wrong pin:", d["code"], "pinned" in d["msg"]' || true
conf
env -i CNI_COMMAND=ADD CNI_IFNAME=eth0 $NETSH <$CONF | field '"no container id:", d["code"]' || true
cni ADD $(ID 1) /proc/1/ns/net | field '"foreign netns:", d["code"], "/run/netns" in d["details"]' || true
cni ADD $(ID 1) /run/netns/missing | field '"missing netns:", d["code"]' || true
[ "$(snapshot)" = "$before" ] && echo "nothing changed"
# With the right pin, the same call works.
conf '"sha256": "'$(sha256sum $RECIPES/docker-bridge.wasm | cut -c1-64)'"'
cni ADD $(ID 1) /run/netns/na | field '"pinned add:", d["ips"][0]["address"]'
"#,
        60,
    );
    out.assert_ok();
    out.assert_has(&[
        "malformed: 6",
        "old version: 1",
        "no recipe: 7",
        "no grants: 100 True",
        "no network: 7 True",
        "wrong pin: 101 True",
        "no container id: 4",
        "foreign netns: 8 True",
        "missing netns: 8",
        "nothing changed",
        "pinned add: 10.89.0.2/24",
    ]);
}

#[test]
fn the_agent_answers_cni_calls() {
    let out = cni_script(
        Firewall::Nftables,
        r#"
$DB create podnet --subnet 10.89.0.0/24 >/dev/null
$NETSH agent --agent-socket $work/agent.sock 2>$work/agent.log & agent=$!
trap '{ kill $agent && wait $agent; } 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -S $work/agent.sock ] && break; sleep 0.05; done
conf '"agentSocket": "'$work/agent.sock'"'
ip netns add na; ip netns add nb
cni ADD $(ID 1) /run/netns/na | field 'd["ips"][0]["address"], [i.get("sandbox") for i in d["interfaces"]]'
ip -n na -o -4 addr show eth0 | awk '{print "kernel:", $4}'
cni CHECK $(ID 1) /run/netns/na && echo "check: ok"
cni ADD $(ID 1) /run/netns/na | field '"again:", d["code"]' || true
cni DEL $(ID 1) /run/netns/na && echo "del: ok"
ip -n na -o link show eth0 >/dev/null 2>&1 || echo "eth0 gone"
grep -c '`cni ADD` exited 0' $work/agent.log | sed 's/^/agent ran ADD: /'
grep -c '`cni DEL` exited 0' $work/agent.log | sed 's/^/agent ran DEL: /'
# Without the agent, the same call answers the same.
kill $agent; wait $agent || true
cni ADD $(ID 2) /run/netns/nb | field 'd["ips"][0]["address"], [i.get("sandbox") for i in d["interfaces"]]'
"#,
        60,
    );
    out.assert_ok();
    out.assert_has(&[
        "10.89.0.2/24 [None, '/run/netns/na']",
        "kernel: 10.89.0.2/24",
        "check: ok",
        "again: 102",
        "del: ok",
        "eth0 gone",
        "agent ran ADD: 1",
        "agent ran DEL: 1",
        "10.89.0.3/24 [None, '/run/netns/nb']",
    ]);
}
