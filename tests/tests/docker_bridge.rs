//! docker-bridge: Docker's bridge networking proven with real packets, with
//! an "outside" host simulated by a namespace behind the test's uplink.

use netsh_e2e::{Firewall, sandboxed, sandboxed_on};

#[test]
fn containers_reach_each_other_the_outside_and_published_ports() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
make_outside
before=$(snapshot)
$DB create mynet --subnet 172.25.0.0/16
$DB connect mynet c1 --publish 8080:80 --alias web --alias www ';' connect mynet c2 --publish 8100-8102:8100 --publish 9999:9999/udp
echo "dnat entries: $(dnat_entries | wc -l)"
ip netns exec c1 ping -c1 -W2 172.25.0.1 >/dev/null && echo "gateway: ok"
ip netns exec c1 ping -c1 -W2 172.25.0.3 >/dev/null && echo "peer: ok"
serve outside 7000
echo "masquerade: $(fetch c1 10.200.0.2 7000)"
serve c1 80
echo "outside->published: $(fetch outside 10.200.0.1 8080)"
echo "localhost->published: $(fetch - 127.0.0.1 8080)"
echo "hostaddr->published: $(fetch - 10.200.0.1 8080)"
echo "hairpin: $(fetch c2 10.200.0.1 8080)"
echo "self hairpin: $(fetch c1 10.200.0.1 8080)"
for p in 8100 8101 8102; do serve c2 $p; echo "range $p: $(fetch outside 10.200.0.1 $p)"; done
serve c2 9999 udp
echo "udp: $(fetch outside 10.200.0.1 9999 udp)"
echo "getent: $(ip netns exec c2 getent hosts web | tr -s ' \t' ' ') / $(ip netns exec c1 getent hosts c2 | tr -s ' \t' ' ')"
stop_servers
ip netns exec c1 cat /etc/hostname | sed 's/^/hostname: /'
grep -q '^nameserver' /etc/netns/c1/resolv.conf && ! grep -q '127\.0\.0\.' /etc/netns/c1/resolv.conf && echo "resolv: ok"
$DB inspect mynet > inspect.json
$DB disconnect mynet c1
! grep -q web /etc/netns/c2/hosts && echo "hosts updated: ok"
$DB rm mynet --force
settled_to "$before" && echo "teardown: clean"
echo "INSPECT $(tr -d '\n' < inspect.json)"
"#,
            120,
        );
        out.assert_ok();
        let o = &out.stdout;
        for expected in [
            "dnat entries: 5",
            "gateway: ok",
            "peer: ok",
            "masquerade: outside saw 10.200.0.1",
            "outside->published: c1 saw 10.200.0.2",
            "localhost->published: c1 saw 172.25.0.1",
            "hostaddr->published: c1 saw 172.25.0.1",
            "hairpin: c1 saw 172.25.0.3",
            "self hairpin: c1 saw 172.25.0.1",
            "range 8100: c2 saw 10.200.0.2",
            "range 8101: c2 saw 10.200.0.2",
            "range 8102: c2 saw 10.200.0.2",
            "udp: c2 saw 10.200.0.2",
            "getent: 172.25.0.2 c1 web www / 172.25.0.3 c2",
            "hostname: c1",
            "resolv: ok",
            "hosts updated: ok",
            "teardown: clean",
        ] {
            assert!(o.contains(expected), "{fw:?}: missing {expected:?} in\n{o}\n{}", out.stderr);
        }
        let json = o.split("INSPECT ").nth(1).expect("inspect output");
        let v: serde_json::Value = serde_json::from_str(json).expect("inspect is JSON");
        let net = &v[0];
        assert_eq!(net["Name"], "mynet");
        assert_eq!(net["Id"].as_str().unwrap().len(), 64);
        assert_eq!(net["EnableIPv6"], false);
        assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "172.25.0.0/16");
        assert_eq!(net["IPAM"]["Config"][0]["Gateway"], "172.25.0.1");
        assert_eq!(net["Options"]["com.docker.network.bridge.name"], "br-mynet");
        let c1 = &net["Containers"]["c1"];
        assert_eq!(c1["IPv4Address"], "172.25.0.2/16");
        assert_eq!(c1["Aliases"], serde_json::json!(["web", "www"]));
        assert_eq!(c1["Ports"], serde_json::json!(["0.0.0.0:8080->80/tcp"]));
        assert_eq!(c1["MacAddress"].as_str().unwrap().len(), 17);
        assert_eq!(c1["EndpointID"].as_str().unwrap().len(), 64);
        assert_eq!(c1["IPv6Address"], "");
    }
}

#[test]
fn internal_networks_have_no_way_out_and_publish_nothing() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
make_outside
$DB create int --internal --subnet 172.26.0.0/24
$DB connect int i1
$DB connect int i2
ip netns exec i1 ping -c1 -W2 172.26.0.3 >/dev/null && echo "inside: ok"
serve outside 7000
fetch i1 10.200.0.2 7000 2>/dev/null && echo "LEAK" || echo "outbound: blocked"
ip netns exec i1 ping -c1 -W1 10.200.0.2 >/dev/null 2>&1 && echo "LEAK" || echo "ping out: blocked"
expect_fail $DB connect int i3 --publish 8080:80
ip netns list | grep -q '^i3' && echo "LEFTOVER i3" || true
stop_servers
"#,
            60,
        );
        out.assert_ok();
        let o = &out.stdout;
        assert!(o.contains("inside: ok") && o.contains("outbound: blocked") && o.contains("ping out: blocked"), "{o}");
        assert!(o.contains("network int is internal: ports cannot be published"), "{o}");
        assert!(!o.contains("LEAK") && !o.contains("LEFTOVER"), "{o}");
    }
}

#[test]
fn icc_false_blocks_containers_but_not_published_ports() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
make_outside
$DB create quiet --icc=false --subnet 172.27.0.0/24
$DB connect quiet q1 --publish 8080:80
$DB connect quiet q2
ip netns exec q2 ping -c1 -W1 172.27.0.2 >/dev/null 2>&1 && echo "LEAK" || echo "icc: blocked"
ip netns exec q2 ping -c1 -W2 172.27.0.1 >/dev/null && echo "gateway: ok"
serve q1 80
echo "published: $(fetch outside 10.200.0.1 8080)"
stop_servers
"#,
            60,
        );
        out.assert_ok();
        let o = &out.stdout;
        assert!(o.contains("icc: blocked") && o.contains("gateway: ok") && !o.contains("LEAK"), "{o}");
        assert!(o.contains("published: q1 saw 10.200.0.2"), "{o}");
    }
}

#[test]
fn under_icc_false_a_link_reaches_its_targets_exposed_ports_and_nothing_else() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
before=$(snapshot)
$DB create bridge --icc=false --subnet 172.31.0.0/24 >/dev/null
$DB connect bridge db --expose 5432 >/dev/null
$DB connect bridge web --link db:database >/dev/null
$DB connect bridge other >/dev/null
serve db 5432
serve db 80
serve web 8000
echo "link: $(fetch web database 5432)"
fetch web 172.31.0.2 80 >/dev/null 2>&1 && echo "LEAK: unexposed port" || echo "unexposed port: blocked"
fetch other 172.31.0.2 5432 >/dev/null 2>&1 && echo "LEAK: unlinked" || echo "unlinked: blocked"
fetch db 172.31.0.3 8000 >/dev/null 2>&1 && echo "LEAK: reverse" || echo "reverse: blocked"
ip netns exec web ping -c1 -W1 172.31.0.2 >/dev/null 2>&1 && echo "LEAK: ping" || echo "ping: blocked"
$DB disconnect bridge web
$DB connect bridge again --ip 172.31.0.3 >/dev/null
fetch again 172.31.0.2 5432 >/dev/null 2>&1 && echo "LEAK: stale" || echo "web's address, without the link: blocked"
stop_servers
$DB disconnect bridge other
$DB connect bridge other >/dev/null && echo "reconnected at once"
$DB disconnect bridge again
$DB disconnect bridge other
$DB disconnect bridge db
$DB rm bridge
settled_to "$before" && echo "teardown: clean"
"#,
            60,
        );
        out.assert_ok().assert_has(&[
            "link: db saw 172.31.0.3",
            "unexposed port: blocked",
            "unlinked: blocked",
            "reverse: blocked",
            "ping: blocked",
            "web's address, without the link: blocked",
            "reconnected at once",
            "teardown: clean",
        ]);
    }
}

#[test]
fn an_nftables_table_from_before_link_exceptions_is_upgraded_in_place() {
    sandboxed_on(
        Firewall::Nftables,
        r#"
$DB create bridge --icc=false --subnet 172.31.0.0/24 >/dev/null
$DB connect bridge db --expose 5432 >/dev/null
# Make the table what an older netsh made: no links set, no rule consulting it.
for f in ip ip6; do
  for h in $(nft -a list chain $f netsh isolation | sed -nE 's/.*@links.*# handle ([0-9]+)$/\1/p'); do
    nft delete rule $f netsh isolation handle "$h"
  done
  nft delete set $f netsh links
done
nft list table ip netsh | grep -q links || echo "old layout: no links"
plan=$($NETSH plan $DB_GRANTS $RECIPES/docker-bridge.wasm -- connect bridge web --link db:database 2>/dev/null || true)
echo "plan: $(echo "$plan" | grep -o "nft 'add set ip netsh links {" | head -1)"
echo "plan inserts: $(echo "$plan" | grep -c "nft 'insert rule ip netsh isolation")"
echo "$plan" | grep -o "nft '.*'" | sed "s/^nft '//; s/'\$//" | grep -e '^add set ip netsh links' -e '^insert rule ip netsh isolation' > up.nft
nft -c -f up.nft && echo "the plan's upgrade: nft accepts it"
nft list table ip netsh | grep -q links || echo "after the plan: still no links"
$DB connect bridge web --link db:database >/dev/null
echo "first rule: $(nft list chain ip netsh isolation | grep -m1 -o 'iifname . ip saddr . ip daddr . meta l4proto . th dport @links')"
serve db 5432
echo "link after the upgrade: $(fetch web database 5432)"
stop_servers
$DB connect bridge other --link db >/dev/null
echo "links set: $(nft list set ip netsh links | grep -o '172.31.0.2 . tcp . 5432' | wc -l)"
echo "link rules: $(nft list chain ip netsh isolation | grep -c '@links')"
"#,
        60,
    )
    .assert_ok()
    .assert_has(&[
        "old layout: no links",
        "plan: nft 'add set ip netsh links {",
        "plan inserts: 2",
        "the plan's upgrade: nft accepts it",
        "after the plan: still no links",
        "first rule: iifname . ip saddr . ip daddr . meta l4proto . th dport @links",
        "link after the upgrade: db saw 172.31.0.3",
        "links set: 2",
        "link rules: 2",
    ]);
}

#[test]
fn two_networks_cannot_reach_each_other() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
make_outside
$DB create blue --subnet 172.28.0.0/24
$DB create red --subnet 172.29.0.0/24
$DB connect blue b1
$DB connect red r1
ip netns exec b1 ping -c1 -W2 172.28.0.1 >/dev/null && echo "blue gateway: ok"
ip netns exec b1 ping -c1 -W1 172.29.0.2 >/dev/null 2>&1 && echo "LEAK" || echo "blue->red: blocked"
ip netns exec r1 ping -c1 -W1 172.28.0.2 >/dev/null 2>&1 && echo "LEAK" || echo "red->blue: blocked"
ip netns exec r1 ping -c1 -W2 10.200.0.2 >/dev/null && echo "red->outside: ok"
$DB ls
"#,
            60,
        );
        out.assert_ok();
        let o = &out.stdout;
        for expected in
            ["blue gateway: ok", "blue->red: blocked", "red->blue: blocked", "red->outside: ok", "172.29.0.0/24"]
        {
            assert!(o.contains(expected), "missing {expected:?} in {o}");
        }
        assert!(!o.contains("LEAK"), "{o}");
    }
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
$DB create base --subnet 172.30.0.0/16
$DB connect base c1 --ip 172.30.0.10 --publish 8080:80
before=$(snapshot)
expect_fail $DB create base --subnet 172.31.0.0/16
expect_fail $DB create other --subnet 172.30.5.0/24
expect_fail $DB create other --subnet 10.1.0.0/16 --gateway 10.2.0.1
expect_fail $DB connect base c2 --ip 172.30.0.10
expect_fail $DB connect base c2 --ip 10.0.0.5
expect_fail $DB connect base c2 --publish 8080:80
expect_fail $DB connect base c2 --publish 9000-8000:80
expect_fail $DB connect base averyveryveryveryveryveryveryveryveryveryveryveryverylongcontainername
expect_fail $DB create other --bridge averylongbridgename
expect_fail $DB create other --subnet 10.1.0.0/33
expect_fail $DB rm base
[ "$before" = "$(snapshot)" ] && echo "UNCHANGED" || diff <(echo "$before") <(snapshot)
"#,
            60,
        );
        out.assert_ok();
        let o = &out.stdout;
        for expected in [
            "network base already exists",
            "subnet 172.30.5.0/24 overlaps 172.30.0.0/16 on br-base",
            "gateway 10.2.0.1 is outside subnet 10.1.0.0/16",
            "--ip 172.30.0.10 is already in use by c1",
            "--ip 10.0.0.5 is outside subnet 172.30.0.0/16",
            "host port tcp/8080 is already published by docker-bridge/base/c1",
            "port range 9000-8000 is reversed",
            "container name \"averyvery",
            "bridge name \"averylongbridgename\" is longer than 15 bytes",
            "\"10.1.0.0/33\" is not a CIDR",
            "network base has active endpoints (c1)",
            "UNCHANGED",
        ] {
            assert!(o.contains(expected), "missing {expected:?} in\n{o}");
        }
    }
}

#[test]
fn connect_by_pid_joins_a_running_process() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
$DB create pidnet --subnet 172.24.0.0/24
unshare --net sleep 60 &
pid=$!
sleep 0.2
$DB connect pidnet proc1 --pid $pid --ip 172.24.0.50
nsenter -t $pid -n ip -o -4 addr show eth0 | grep -q '172.24.0.50/24' && echo "process has eth0: ok"
nsenter -t $pid -n ping -c1 -W2 172.24.0.1 >/dev/null && echo "process reaches gateway: ok"
$DB disconnect pidnet proc1
ip netns list | grep -q '^proc1' && echo "LEFTOVER name" || echo "name released: ok"
kill -0 $pid && echo "process alive: ok"
nsenter -t $pid -n ip -o link | grep -q eth0 && echo "LEFTOVER eth0" || echo "eth0 removed: ok"
kill $pid
"#,
            60,
        );
        out.assert_ok();
        let o = &out.stdout;
        for expected in [
            "process has eth0: ok",
            "process reaches gateway: ok",
            "name released: ok",
            "process alive: ok",
            "eth0 removed: ok",
        ] {
            assert!(o.contains(expected), "missing {expected:?} in {o}\n{}", out.stderr);
        }
    }
}

#[test]
fn ephemeral_host_ports_publish_all_and_ports_already_in_use() {
    sandboxed_on(
        Firewall::Nftables,
        r#"
make_outside
before=$(snapshot)
$DB create pub --subnet 172.26.0.0/24
out=$($DB connect pub c1 -p 80 -p 127.0.0.1::81 -p 8088:88 -p 8089:80); echo "$out"
port=$(echo "$out" | sed -n 's#^80/tcp -> 0.0.0.0:##p' | head -1)
lport=$(echo "$out" | sed -n 's#^81/tcp -> 127.0.0.1:##p')
read -r low high < /proc/sys/net/ipv4/ip_local_port_range
[ "$port" -ge "$low" ] && [ "$port" -le "$high" ] && [ "$lport" -ge "$low" ] && echo "ephemeral ports: in $low-$high"
serve c1 80; serve c1 81
echo "outside->ephemeral: $(fetch outside 10.200.0.1 "$port")"
echo "outside->second host port: $(fetch outside 10.200.0.1 8089)"
echo "hairpin->second host port: $(fetch c1 10.200.0.1 8089)"
echo "localhost->127.0.0.1::81: $(fetch - 127.0.0.1 "$lport")"
fetch outside 10.200.0.1 "$lport" >/dev/null 2>&1 || echo "127.0.0.1-only port: closed to the outside"
all=$($DB connect pub c2 -P --expose 8080 --expose 5353/udp); echo "$all"
serve c2 5353 udp
echo "outside->-P udp: $(fetch outside 10.200.0.1 "$(echo "$all" | sed -n 's#^5353/udp -> 0.0.0.0:##p')" udp)"
$DB inspect pub | python3 -c 'import json,sys; c=json.load(sys.stdin)[0]["Containers"]; print("inspect ports:", len(c["c1"]["Ports"]), len(c["c2"]["Ports"]))'
stop_servers
# A process on this host holds 7777: publishing over it is refused, naming it.
timeout 60 python3 -c 'import socket,time; s=socket.socket(); s.bind(("0.0.0.0",7777)); s.listen(); time.sleep(60)' &
PIDS+=($!)
for _ in $(seq 50); do ss -Hltn 'sport = :7777' | grep -q . && break; sleep 0.1; done
state=$(snapshot)
expect_fail $DB connect pub c3 -p 7777:80
expect_fail $DB connect pub c3 -p 10.9.9.9:8080:80
expect_fail $DB connect pub c3 -p 8088:80
[ "$(snapshot)" = "$state" ] && ! ip netns list | grep -q c3 && echo "refused: nothing changed"
expect_fail $DB connect pub c3 -P
expect_fail $DB connect pub c3 --expose 8080:80
expect_fail $DB connect pub c3 -p 80-82
echo "shell: $($NETSH -c 'fw free-port udp 127.0.0.1' | grep -cE '^[0-9]+$')"
stop_servers
$DB rm pub --force
settled_to "$before" && echo "teardown: clean"
"#,
        90,
    )
    .assert_ok()
    .assert_has(&[
        "88/tcp -> 0.0.0.0:8088",
        "ephemeral ports: in",
        "outside->ephemeral: c1 saw 10.200.0.2",
        "outside->second host port: c1 saw 10.200.0.2",
        "hairpin->second host port: c1 saw 172.26.0.1",
        "localhost->127.0.0.1::81: c1 saw",
        "127.0.0.1-only port: closed to the outside",
        "8080/tcp -> 0.0.0.0:",
        "5353/udp -> 0.0.0.0:",
        "outside->-P udp: c2 saw 10.200.0.2",
        "inspect ports: 4 2",
        "host port tcp/7777 is in use: tcp is bound to 0.0.0.0:7777 by pid",
        "(python3); stop it or publish another port",
        "host address 10.9.9.9 is not on this machine",
        "host port tcp/8088 is already published by",
        "refused: nothing changed",
        "--publish-all (-P) publishes the ports given with --expose",
        "--expose \"8080:80\" is a container port, PORT[/tcp|udp]; publish with -p",
        "netsh picks one host port per container port",
        "shell: 1",
        "teardown: clean",
    ]);
}

#[test]
fn ls_prints_names_or_json_lines_and_prune_removes_unused_networks() {
    sandboxed(
        r#"
before=$(snapshot)
$DB create a1 --subnet 172.27.0.0/24 >/dev/null
$DB create a2 --subnet 172.27.1.0/24 --aux-address router=172.27.1.2 --label tier=db --label 'owner=ops team' >/dev/null
$DB connect a2 c1 >/dev/null
echo "quiet: $($DB ls -q | tr '\n' ' ')"
$DB ls --format json | python3 -c 'import json,sys; print("json:", [(j["Name"], j["Driver"], len(j["ID"]), j["Labels"], j["CreatedAt"][:2]) for j in map(json.loads, sys.stdin)])'
$DB inspect a2 | python3 -c '
import json, sys, datetime
n = json.load(sys.stdin)[0]
age = datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.fromisoformat(n["Created"][:26] + "+00:00")
print("inspect:", n["Labels"], n["IPAM"]["Config"][0]["AuxiliaryAddresses"], n["Containers"]["c1"]["IPv4Address"], "created just now:", 0 <= age.total_seconds() < 120)'
expect_fail $DB ls --format '{{.Name}}'
expect_fail $DB connect a2 c2 --ip 172.27.1.2
expect_fail $DB create a3 --subnet 172.27.2.0/24 --aux-address r=172.27.9.9
expect_fail $DB create a3 --label tier=a --label tier=b
$DB prune
echo "after prune: $($DB ls -q | tr '\n' ' ')"
ip link show br-a1 >/dev/null 2>&1 || echo "br-a1 gone"
$DB prune
$DB rm a2 --force
settled_to "$before" && echo "teardown: clean"
"#,
        60,
    )
    .assert_ok()
    .assert_has(&[
        "quiet: a1 a2 ",
        "json: [('a1', 'bridge', 12, '', '20'), ('a2', 'bridge', 12, 'tier=db,owner=ops team', '20')]",
        "inspect: {'tier': 'db', 'owner': 'ops team'} {'router': '172.27.1.2'} 172.27.1.3/24 created just now: True",
        "--ip 172.27.1.2 is already in use by aux-address router",
        "172.27.9.9 is not a host address of the network's subnets",
        "--label tier given twice",
        "use json or table (Docker's Go templates are not supported)",
        "Deleted Networks:\na1\n",
        "after prune: a2 ",
        "br-a1 gone",
        "no unused networks",
        "teardown: clean",
    ]);
}

#[test]
fn net_none_gives_only_a_loopback_and_net_host_makes_nothing() {
    sandboxed(
        r#"
before=$(snapshot)
$DB create n1 --subnet 172.28.0.0/24 >/dev/null
$DB connect none iso --hostname box
echo "links: $(ip -n iso -o link | awk -F': ' '{print $2}' | tr '\n' ' ')"
ip -n iso link show lo | grep -q 'state UNKNOWN\|,UP' && echo "lo: up"
ip netns exec iso ping -c1 -W1 127.0.0.1 >/dev/null && echo "loopback answers"
echo "hostname file: $(cat /etc/netns/iso/hostname)"
state=$(snapshot)
expect_fail $DB connect n1 iso
expect_fail $DB connect none iso
expect_fail $DB connect none other --publish 8080:80
expect_fail $DB connect none other --link iso
expect_fail $DB create none
$DB connect host web
expect_fail $DB connect host web --hostname h
[ "$(snapshot)" = "$state" ] && echo "refusals and --net host: nothing changed"
$DB disconnect none iso
expect_fail $DB disconnect none iso
$DB rm n1
settled_to "$before" && echo "teardown: clean"
"#,
        60,
    )
    .assert_ok()
    .assert_has(&[
        "iso lo (network none: loopback only)",
        "links: lo ",
        "lo: up",
        "loopback answers",
        "hostname file: box",
        "container iso is on network none (Docker's --net none); `disconnect none iso` first",
        "namespace iso already exists",
        "--publish does not apply to network none",
        "--link does not apply to network none",
        "network name none is reserved",
        "web uses the host's network namespace (Docker's --net host): nothing to create",
        "--hostname does not apply to network host",
        "refusals and --net host: nothing changed",
        "container iso is not on network none",
        "teardown: clean",
    ]);
}

#[test]
fn net_container_shares_a_namespace_under_a_second_name_that_grants_must_cover_too() {
    sandboxed(
        r#"
before=$(snapshot)
$DB create sh --subnet 10.36.0.0/24 >/dev/null
$DB connect sh c1 --hostname box >/dev/null
$DB connect sh peer >/dev/null
$DB connect container:c1 side
echo "side: $(ip -n side -o -4 addr show eth0 | awk '{print $4}')"
echo "hostname file: $(cat /etc/netns/side/hostname)"
serve c1 8080
echo "localhost: $(fetch side 127.0.0.1 8080)"
ip netns exec side ping -c1 -W2 10.36.0.3 >/dev/null && echo "side pings peer"
E="--allow netns:side --allow exec:side"
expect_fail $NETSH $E exec side -- true
$NETSH $E --allow netns:c1 --allow exec:c1 exec side -- ip -o -4 addr show eth0 | awk '{print "exec:", $4}'
echo "side's hostname: $($NETSH $E --allow netns:c1 --allow exec:c1 exec side -- hostname)"
expect_fail $NETSH --allow netns:side --allow link:side/* -c 'ip -n side link set lo mtu 1400'
state=$(snapshot)
expect_fail $DB connect container:c1 side
expect_fail $DB connect container:c1 other --publish 8081:80
expect_fail $DB connect container:c1 other --hostname h
expect_fail $DB connect container:nobody other
expect_fail $DB connect sh side
expect_fail $DB disconnect sh c1
[ "$(snapshot)" = "$state" ] && echo "refusals: nothing changed"
plan=$($NETSH plan $DB_GRANTS $RECIPES/docker-bridge.wasm -- connect container:side third 2>/dev/null || true)
echo "$plan" | grep -o 'ip netns alias third c1'
$DB connect container:side third
echo "third: $(ip -n third -o -4 addr show eth0 | awk '{print $4}')"
$DB disconnect container:c1 third
$NETSH undo last >/dev/null
[ -e /run/netns/third ] && echo "undo of the disconnect: third named again"
$NETSH undo last >/dev/null
[ -e /run/netns/third ] || echo "undo of the connect: third gone"
$DB disconnect container:c1 side
[ -e /run/netns/side ] || echo "side: name gone"
echo "c1 after: $(ip -n c1 -o -4 addr show eth0 | awk '{print $4}')"
[ -z "$(ls -A /etc/netns/.names 2>/dev/null)" ] && echo "no alias records left"
stop_servers
$DB rm sh --force
settled_to "$before" && echo "teardown: clean"
"#,
        60,
    )
    .assert_ok()
    .assert_has(&[
        "side shares c1's network namespace (Docker's --net container:c1)",
        "side: 10.36.0.2/24",
        "hostname file: box",
        "localhost: c1 saw 127.0.0.1",
        "side pings peer",
        "needs netns:c1; rerun with --allow netns:c1 (side is also named c1: a grant must cover every name of a namespace)",
        "exec: 10.36.0.2/24",
        "side's hostname: box",
        "-c:1: permission denied: needs netns:c1",
        "namespace side already exists",
        "--publish does not apply to network container:c1",
        "--hostname does not apply to network container:c1",
        "container nobody is on no network",
        "container side shares c1's namespace (--net container:c1); it joins no network itself",
        "side shares c1's namespace (--net container:c1); `disconnect container:c1 side` first",
        "refusals: nothing changed",
        "third shares c1's network namespace",
        "ip netns alias third c1",
        "third: 10.36.0.2/24",
        "undo of the disconnect: third named again",
        "undo of the connect: third gone",
        "side: name gone",
        "c1 after: 10.36.0.2/24",
        "no alias records left",
        "teardown: clean",
    ]);
}

#[test]
fn docker_bridge_driver_options_shape_the_bridge_nat_and_publishing() {
    sandboxed(
        r#"
make_outside
ip -n outside route add 172.29.0.0/24 via 10.200.0.1
before=$(snapshot)
$DB create raw --subnet 172.29.0.0/24 -o com.docker.network.bridge.name=br-raw0 -o com.docker.network.driver.mtu=1400 \
  -o com.docker.network.bridge.enable_ip_masquerade=false -o com.docker.network.bridge.host_binding_ipv4=127.0.0.1
ip -o link show br-raw0 | grep -o 'mtu [0-9]*'
$DB connect raw c1 -p 8080:80
serve outside 7000
echo "no masquerade: $(fetch c1 10.200.0.2 7000)"
serve c1 80
echo "published on 127.0.0.1: $(fetch - 127.0.0.1 8080)"
fetch outside 10.200.0.1 8080 >/dev/null 2>&1 || echo "not on the uplink address"
stop_servers
$DB ls | grep raw | tr -s ' '
$DB inspect raw | python3 -c 'import json,sys; o=json.load(sys.stdin)[0]["Options"]; print("inspect:", o["com.docker.network.bridge.name"], o["com.docker.network.bridge.enable_ip_masquerade"], o["com.docker.network.bridge.host_binding_ipv4"], o["com.docker.network.driver.mtu"])'
state=$(snapshot)
expect_fail $DB create bad -o com.docker.network.bridge.enable_ip_masquerade=maybe
expect_fail $DB create bad -o com.example.unknown=1
expect_fail $DB create bad -o nokeyvalue
expect_fail $DB create bad -o com.docker.network.driver.mtu=1400 --mtu 1500
expect_fail $DB create bad -o com.docker.network.bridge.host_binding_ipv4=::1
[ "$(snapshot)" = "$state" ] && echo "bad options: nothing changed"
$DB rm raw --force
settled_to "$before" && echo "teardown: clean"
"#,
        60,
    )
    .assert_ok()
    .assert_has(&[
        "raw br-raw0 subnet 172.29.0.0/24",
        "mtu 1400",
        "80/tcp -> 127.0.0.1:8080",
        "no masquerade: outside saw 172.29.0.2",
        "published on 127.0.0.1: c1 saw",
        "not on the uplink address",
        "(no masquerade)",
        "inspect: br-raw0 false 127.0.0.1 1400",
        "com.docker.network.bridge.enable_ip_masquerade must be true or false, not \"maybe\"",
        "driver option \"com.example.unknown\" is not supported",
        "-o \"nokeyvalue\" is not KEY=VALUE",
        "--mtu and its -o driver option both given; give one",
        "is not an IPv4 address",
        "bad options: nothing changed",
        "teardown: clean",
    ]);
}

#[test]
fn iptables_false_and_ip_forward_false_leave_the_firewall_and_forwarding_alone() {
    sandboxed(
        r#"
make_outside
sysctl -qw net.ipv4.ip_forward=0
before=$(snapshot)
$DB create plain --subnet 172.30.0.0/24 --iptables=false --ip-forward=false >/dev/null
$DB connect plain a >/dev/null
$DB connect plain b >/dev/null
echo "ip_forward: $(sysctl -n net.ipv4.ip_forward)"
nft list table ip netsh >/dev/null 2>&1 || nft list table ip6 netsh >/dev/null 2>&1 || echo "no netsh table"
ip netns exec a ping -c1 -W2 172.30.0.3 >/dev/null && echo "peers: ok"
serve outside 7000
fetch a 10.200.0.2 7000 >/dev/null 2>&1 || echo "no way out"
stop_servers
$DB ls | grep plain | grep -o '(iptables=false)'
expect_fail $DB connect plain c -p 8080:80
expect_fail $DB create x --iptables=false --internal
expect_fail $DB create x --iptables=maybe
$DB rm plain --force
settled_to "$before" && echo "teardown: clean"
"#,
        60,
    )
    .assert_ok()
    .assert_has(&[
        "ip_forward: 0",
        "no netsh table",
        "peers: ok",
        "no way out",
        "(iptables=false)",
        "was created with --iptables=false: netsh makes no firewall rules for it, so it publishes no ports",
        "--iptables=false makes no firewall rules: --internal",
        "--iptables must be true or false, not \"maybe\"",
        "teardown: clean",
    ]);
}

#[test]
fn port_forward_reaches_any_destination_and_cleans_up() {
    for fw in Firewall::BOTH {
        let out = sandboxed_on(
            fw,
            r#"
make_outside
ip netns add lab
ip link add labh type veth peer name eth0 netns lab
ip addr add 10.201.0.1/24 dev labh
ip link set labh up
ip -n lab addr add 10.201.0.2/24 dev eth0
ip -n lab link set eth0 up
ip -n lab route add default via 10.201.0.1
before=$(snapshot)
PF="$NETSH run --allow publish:1-65535 --allow sysctl:net.ipv4.ip_forward $RECIPES/port-forward.wasm --"
$PF add 8080 10.201.0.2:7000
$PF add 8080 10.201.0.2:7000
$PF add 5300-5301 10.201.0.2:5300/udp
$PF add 0.0.0.0:8090 10.201.0.2:7000
$PF ls
serve lab 7000
serve lab 5301 udp
echo "forwarded: $(fetch outside 10.200.0.1 8080)"
echo "0.0.0.0:8090: $(fetch outside 10.200.0.1 8090)"
echo "local: $(fetch - 10.200.0.1 8080)"
echo "udp range: $(fetch outside 10.200.0.1 5301 udp)"
stop_servers
echo "dnat entries: $(dnat_entries | grep -c '^8080 ')"
expect_fail $PF rm 8081 10.201.0.2:7000
$PF rm 8080 10.201.0.2:7000
$PF rm 5300-5301 10.201.0.2:5300/udp
$PF rm 0.0.0.0:8090 10.201.0.2:7000
settled_to "$before" && echo "teardown: clean"
"#,
            60,
        );
        out.assert_ok();
        let o = &out.stdout;
        for expected in [
            "8080 -> 10.201.0.2:7000/tcp",
            "forwarded: lab saw 10.200.0.2",
            "0.0.0.0:8090: lab saw 10.200.0.2",
            "local: lab saw 10.201.0.1",
            "udp range: lab saw 10.200.0.2",
            "dnat entries: 1",
            "no forward 8081 10.201.0.2:7000",
            "teardown: clean",
        ] {
            assert!(o.contains(expected), "missing {expected:?} in {o}\n{}", out.stderr);
        }
    }
}

#[test]
fn netsh_exec_runs_a_program_in_a_container_namespace_with_its_files() {
    sandboxed_on(
        Firewall::Nftables,
        r#"
before=$(snapshot)
$DB create ex --subnet 10.34.0.0/24 >/dev/null
$DB connect ex c1 --alias web >/dev/null
$DB connect ex c2 --hostname box >/dev/null
expect_fail $NETSH exec c2 -- true
E="--allow netns:c2 --allow exec:c2"
$NETSH $E exec c2 -- ip -o -4 addr show eth0 | awk '{print "addr:", $4}'
echo "hostname file: $($NETSH $E exec c2 -- cat /etc/hostname)"
echo "hostname: $($NETSH $E exec c2 -- hostname)"
[ "$(hostname)" != box ] && echo "the host's hostname: unchanged"
echo "hosts: $($NETSH $E exec c2 -- getent hosts web | tr -s ' \t' ' ')"
echo "sysfs: $($NETSH $E exec c2 -- ls /sys/class/net | tr '\n' ' ')"
$NETSH $E exec c2 -- sh -c 'exit 7' || echo "status: $?"
expect_fail $NETSH $E exec c2 -- no-such-program
expect_fail $NETSH --allow-all exec nope -- true
expect_fail $NETSH --allow netns:c1 --allow exec:c2 exec c1 -- true
echo "audited: $(grep -c 'ip netns exec c2' $NETSH_STATE_DIR/audit.jsonl)"
$DB rm ex --force
settled_to "$before" && echo "teardown: clean"
"#,
        60,
    )
    .assert_ok()
    .assert_has(&[
        "needs grants it was not given: --allow 'netns:c2' --allow 'exec:c2'",
        "addr: 10.34.0.3/24",
        "hostname file: box",
        "hostname: box",
        "the host's hostname: unchanged",
        "hosts: 10.34.0.2 c1 web",
        "sysfs: eth0 lo ",
        "status: 7",
        "program no-such-program not found",
        "namespace nope does not exist",
        "needs exec:c1",
        "audited: 8",
        "teardown: clean",
    ]);
}

#[test]
fn dual_stack_networks_carry_ipv6_between_containers_to_the_outside_and_to_published_ports() {
    let out = sandboxed(
        r#"
make_outside
before=$(snapshot)
$DB create dual --ipv6 --subnet 172.27.0.0/24 --subnet fd00:27::/64
$DB connect dual c1 -p 8080:80 -p 81 -p '[::]:8082:80' -p 0.0.0.0:8083:80
$DB connect dual c2 --ip6 fd00:27::99 > c2.txt; cat c2.txt
$DB create other --ipv6 | sed 's/^/other: /'
o1=$($DB connect other o1 | awk '{print $4}' | cut -d/ -f1)
echo "v6 forwarding: $(sysctl -n net.ipv6.conf.all.forwarding)"
# (grep reads all: under pipefail, grep -q leaving early would fail ip with SIGPIPE)
ip -n c1 -6 addr show dev eth0 | grep 'fd00:27::2/64 .*nodad' >/dev/null && ip -6 addr show dev br-dual | grep 'fd00:27::1/64 .*nodad' >/dev/null && echo "nodad: ok"
ip netns exec c1 ping -6 -c1 -W2 fd00:27::1 >/dev/null && echo "v6 gateway: ok"
ip netns exec c1 ping -6 -c1 -W2 fd00:27::99 >/dev/null && echo "v6 peer: ok"
ip netns exec c1 ping -c1 -W2 172.27.0.3 >/dev/null && echo "v4 peer: ok"
ping -6 -c1 -W2 "$o1" >/dev/null && echo "o1 answers the host over IPv6"
ip netns exec c1 ping -6 -c1 -W1 "$o1" >/dev/null 2>&1 && echo "LEAK to $o1" || echo "v6 isolation: ok"
serve outside 7000
echo "v6 masquerade: $(fetch c1 fd00:200::2 7000)"
echo "v4 masquerade: $(fetch c1 10.200.0.2 7000)"
serve c1 80; serve c1 81
echo "outside->published v6: $(fetch outside fd00:200::1 8080)"
echo "outside->published v4: $(fetch outside 10.200.0.1 8080)"
echo "[::]:8082 over v6: $(fetch outside fd00:200::1 8082)"
fetch outside 10.200.0.1 8082 >/dev/null 2>&1 || echo "[::]:8082 over v4: closed"
echo "0.0.0.0:8083 over v4: $(fetch outside 10.200.0.1 8083)"
fetch outside fd00:200::1 8083 >/dev/null 2>&1 || echo "0.0.0.0:8083 over v6: closed"
eport=$($DB inspect dual | python3 -c 'import json,sys; print([p for p in json.load(sys.stdin)[0]["Containers"]["c1"]["Ports"] if p.startswith("[::]") and p.endswith("->81/tcp")][0].split(":")[-1].split("-")[0])')
echo "outside->ephemeral v6: $(fetch outside fd00:200::1 "$eport")"
echo "aaaa: $(ip netns exec c2 dig +short +time=2 +tries=1 @172.27.0.1 AAAA c1)"
stop_servers
$DB ls --format json | grep '"Name":"dual"' | grep -o '"IPv6":"true"'
$DB inspect dual > inspect.json
state=$(snapshot)
expect_fail $DB create bad --subnet fd00:28::/64
expect_fail $DB create bad --subnet 172.28.0.0/24 --subnet 172.29.0.0/24
expect_fail $DB create bad --ipv6 --subnet fd00:27:0:0:1::/80
expect_fail $DB connect dual c3 --ip6 fd00:99::5
expect_fail $DB connect dual c3 --ip6 fd00:27::99
$DB create v4only --subnet 172.28.0.0/24 >/dev/null
expect_fail $DB connect v4only c3 -p '[::1]:8080:80'
$DB rm v4only
[ "$(snapshot)" = "$state" ] && echo "refused: nothing changed"
$DB rm dual --force
$DB rm other --force
settled_to "$before" && echo "teardown: clean"
echo "INSPECT $(tr -d '\n' < inspect.json)"
"#,
        120,
    );
    out.assert_ok().assert_has(&[
        "dual br-dual subnet 172.27.0.0/24 gateway 172.27.0.1 subnet fd00:27::/64 gateway fd00:27::1",
        "c2 eth0 172.27.0.3/24 fd00:27::99/64",
        "80/tcp -> 0.0.0.0:8080",
        "80/tcp -> [::]:8080",
        "81/tcp -> [::]:",
        "v6 forwarding: 1",
        "nodad: ok",
        "v6 gateway: ok",
        "v6 peer: ok",
        "v4 peer: ok",
        "o1 answers the host over IPv6",
        "v6 isolation: ok",
        "v6 masquerade: outside saw fd00:200::1",
        "v4 masquerade: outside saw 10.200.0.1",
        "outside->published v6: c1 saw fd00:200::2",
        "outside->published v4: c1 saw 10.200.0.2",
        "[::]:8082 over v6: c1 saw fd00:200::2",
        "[::]:8082 over v4: closed",
        "0.0.0.0:8083 over v4: c1 saw 10.200.0.2",
        "0.0.0.0:8083 over v6: closed",
        "80/tcp -> [::]:8082",
        "80/tcp -> 0.0.0.0:8083",
        "outside->ephemeral v6: c1 saw fd00:200::2",
        "aaaa: fd00:27::2",
        "\"IPv6\":\"true\"",
        "fd00:28::/64 is IPv6: add --ipv6",
        "--subnet given twice for IPv4",
        "overlaps fd00:27::/64",
        "--ip6 fd00:99::5 is outside subnet fd00:27::/64",
        "--ip6 fd00:27::99 is already in use by c2",
        "needs IPv6, and network v4only has none",
        "refused: nothing changed",
        "teardown: clean",
    ]);
    let other = out.stdout.lines().find(|l| l.starts_with("other: ")).expect("other's create line");
    assert!(other.contains(" subnet fd") && other.ends_with("::1"), "a unique local /64 by default: {other}");
    let json = out.stdout.split("INSPECT ").nth(1).expect("inspect output");
    let v: serde_json::Value = serde_json::from_str(json).expect("inspect is JSON");
    let net = &v[0];
    assert_eq!(net["EnableIPv6"], true);
    assert_eq!(net["IPAM"]["Config"][1]["Subnet"], "fd00:27::/64");
    assert_eq!(net["IPAM"]["Config"][1]["Gateway"], "fd00:27::1");
    let c1 = &net["Containers"]["c1"];
    assert_eq!(c1["IPv6Address"], "fd00:27::2/64");
    let ports = c1["Ports"].as_array().expect("ports");
    assert!(ports.contains(&serde_json::json!("[::]:8080->80/tcp")), "{ports:?}");
}

#[test]
fn the_iptables_backend_refuses_dual_stack_networks_and_changes_nothing() {
    sandboxed_on(
        Firewall::Iptables,
        r#"
before=$(snapshot)
expect_fail $DB create dual --ipv6
[ "$(snapshot)" = "$before" ] && [ -z "$($DB ls -q)" ] && echo "nothing changed"
"#,
        30,
    )
    .assert_ok()
    .assert_has(&["the iptables backend handles IPv4 only", "--firewall nftables", "nothing changed"]);
}

#[test]
fn the_default_network_has_no_names_but_links_and_links_elsewhere_follow_their_target() {
    sandboxed(
        r#"
make_outside
before=$(snapshot)
$DB connect bridge c1 2>&1 | sed 's/^/c1: /'
$DB connect bridge c2 --link c1:db >/dev/null
ip -o link show docker0 | grep -q docker0 && echo "docker0: made"
ip netns exec c2 ping -c1 -W2 172.17.0.2 >/dev/null && echo "by address: ok"
echo "link: $(ip netns exec c2 getent -s files hosts db | tr -s ' \t' ' ')"
ip netns exec c1 getent -s files hosts c2 >/dev/null || echo "no names on the default network"
[ -e /etc/netns/.hosts/bridge ] || echo "no shared hosts file"
$DB connect bridge c4 --add-host host.docker.internal:host-gateway --add-host 'db.local=[fd00::7]' >/dev/null
echo "add-host: $(ip netns exec c4 getent -s files hosts host.docker.internal | tr -s ' \t' ' ') / $(ip netns exec c4 getent -s files ahostsv6 db.local | head -1 | tr -s ' \t' ' ')"
grep -q '^nameserver' /etc/netns/c1/resolv.conf && ! grep -q 172.17.0.1 /etc/netns/c1/resolv.conf && echo "resolv: not the gateway"
serve outside 7000
echo "masquerade: $(fetch c1 10.200.0.2 7000)"
stop_servers
state=$(snapshot)
expect_fail $DB connect bridge c3 --link nobody
expect_fail $DB connect bridge c3 --alias x
expect_fail $DB connect bridge c3 --link 'c1:bad/alias'
expect_fail $DB connect bridge c3 --add-host nowhere
[ "$(snapshot)" = "$state" ] && echo "refused: nothing changed"
$DB create mynet --subnet 172.25.0.0/24 >/dev/null
$DB connect mynet u1 --link u2:later >/dev/null
$DB connect mynet u3 >/dev/null
# Names within the zone: nothing is asked upstream.
ask() { ip netns exec $1 dig +short +time=3 +tries=1 @172.25.0.1 "$2" | grep -v '^;' || true; }
echo "before u2: [$(ask u1 later.mynet)]"
$DB connect mynet u2 >/dev/null
echo "after u2: $(ask u1 later) $(ask u1 later.mynet)"
echo "u3 asks: [$(ask u3 later.mynet)]"
$DB connect mynet u4 --add-host host.docker.internal:host-gateway >/dev/null
echo "u4 host-gateway: $(ask u4 host.docker.internal) $(ask u4 host.docker.internal.mynet)"
echo "u3 host-gateway: [$(ask u3 host.docker.internal.mynet)]"
$DB disconnect mynet u1
$DB connect mynet u1 >/dev/null
echo "after reconnect: [$(ask u1 later.mynet)]"
$DB rm mynet --force
$DB rm bridge --force
settled_to "$before" && echo "teardown: clean"
"#,
        90,
    )
    .assert_ok()
    .assert_has(&[
        "c1: made the default network bridge on docker0 (172.17.0.0/16)",
        "c1: c1 eth0 172.17.0.2/16",
        "docker0: made",
        "by address: ok",
        "link: 172.17.0.2 db c1",
        "no names on the default network",
        "no shared hosts file",
        "resolv: not the gateway",
        "masquerade: outside saw 10.200.0.1",
        "container nobody is not on the default network bridge; connect it first",
        "the default network bridge has no names, so no aliases",
        "--link alias name \"bad/alias\" must be",
        "add-host: 172.17.0.1 host.docker.internal / fd00::7 STREAM db.local",
        "--add-host \"nowhere\" must be NAME:IP",
        "refused: nothing changed",
        "u4 host-gateway: 172.25.0.1 172.25.0.1",
        "u3 host-gateway: []",
        "before u2: []",
        "after u2: 172.25.0.4 172.25.0.4",
        "u3 asks: []",
        "after reconnect: []",
        "teardown: clean",
    ]);
}

#[test]
fn an_existing_bridge_is_adopted_when_named_and_left_as_it_was() {
    sandboxed(
        r#"
make_outside
# A bridge made by hand, with an address and a port of its own.
ip link add lab0 type bridge
ip addr add 10.50.0.1/24 dev lab0
ip link add lab0-p type veth peer name lab0-q
ip link set lab0-p master lab0
ip link set lab0 up; ip link set lab0-p up; ip link set lab0-q up
for _ in $(seq 50); do ip -6 route show dev lab0 | grep fe80 >/dev/null && break; sleep 0.1; done
# (up once: the kernel gives it its qdisc for good; it is down again before the test)
ip link add plain0 type bridge; ip link set plain0 up; ip link set plain0 down
ip link add notbr type veth peer name notbr-q
ip link add docker0 type bridge
# The recipe asks for br-* and docker0; bridges of other names are granted by name.
DB="$NETSH run $DB_GRANTS --allow link:lab0 --allow link:plain0 --allow link:notbr $RECIPES/docker-bridge.wasm --"
before=$(snapshot)
$DB create lab --bridge lab0
$DB connect lab c1 >/dev/null
ip netns exec c1 ping -c1 -W2 10.50.0.1 >/dev/null && echo "gateway: the bridge's own address"
serve outside 7000
echo "masquerade: $(fetch c1 10.200.0.2 7000)"
stop_servers
$DB create plain --opt com.docker.network.bridge.name=plain0 --subnet 10.51.0.0/24
ip -o addr show dev plain0 | grep -o '10.51.0.1/24' | sed 's/^/plain0 got /'
state=$(snapshot)
expect_fail $DB create again --bridge lab0
expect_fail $DB create odd --bridge notbr
expect_fail $DB connect bridge c9
[ "$(snapshot)" = "$state" ] && echo "refused: nothing changed"
$DB rm lab --force
$DB rm plain
settled_to "$before" && echo "teardown: the bridges as they were"
"#,
        60,
    )
    .assert_ok()
    .assert_has(&[
        "lab lab0 subnet 10.50.0.0/24 gateway 10.50.0.1",
        "gateway: the bridge's own address",
        "masquerade: outside saw 10.200.0.1",
        "plain plain0 subnet 10.51.0.0/24 gateway 10.51.0.1",
        "plain0 got 10.51.0.1/24",
        "bridge lab0 is network lab's already",
        "interface notbr is a veth, not a bridge",
        "interface docker0 already exists; choose another name with --bridge, or adopt it with --bridge docker0",
        "refused: nothing changed",
        "teardown: the bridges as they were",
    ]);
}
