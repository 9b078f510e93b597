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
