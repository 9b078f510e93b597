//! podman (CNI backend) running real containers on a netsh network: the
//! conflist's plugin is `"type": "netsh"`, the image is busybox built
//! offline. podman's state lives on tmpfs inside the sandbox.

use netsh_e2e::sandboxed_with_pids;

/// podman private to the sandbox, network podnet, image localhost/bb.
const PODMAN: &str = "source $TESTDIR/podman.sh";

#[test]
fn podman_runs_containers_on_a_netsh_network() {
    let out = sandboxed_with_pids(
        &format!(
            "{PODMAN}\n{}",
            r#"
make_outside
before=$(snapshot)
$DB create podnet --subnet 10.89.0.0/24 >/dev/null
podman network ls --format '{{.Name}}' | grep -c '^podnet$' | sed 's/^/network listed: /'
podman run -d --name web --network podnet -p 8082:80 localhost/bb httpd -f -p 80 -h /www >/dev/null
podman run -d --name app --network podnet --ip 10.89.0.50 localhost/bb sleep 120 >/dev/null
podman exec app ip -4 -o addr show eth0 | awk '{print "app:", $4}'
web_ip=$(podman inspect web --format '{{.NetworkSettings.Networks.podnet.IPAddress}}')
echo "web: $web_ip"
echo "app to web: $(podman exec app timeout 3 wget -qO- http://$web_ip/)"
echo "app's nameserver: $(podman exec app grep '^nameserver' /etc/resolv.conf | head -1)"
echo "app to web by name: $(podman exec app timeout 5 wget -qO- http://web/)"
serve outside 80
echo "app to the outside: $(podman exec app timeout 3 nc 10.200.0.2 80 </dev/null)"
stop_servers
echo "published: $(http http://10.200.0.1:8082/)"
# Lifecycle: stop/start (a new namespace), restart, kill -9, rm -f, --rm.
podman stop -t 1 web >/dev/null; veths_settle 1
echo "after stop: $(veths) veth"
podman start web >/dev/null
echo "published after start: $(http http://10.200.0.1:8082/)"
podman restart -t 1 app >/dev/null
podman exec app ip -4 -o addr show eth0 | awk '{print "app after restart:", $4}'
podman kill -s KILL app >/dev/null; veths_settle 1
echo "after kill -9: $(veths) veth"
podman rm -f web app >/dev/null; veths_settle 0
echo "once: $(podman run --rm --network podnet localhost/bb ip -4 -o addr show eth0 | awk '{print $4}' | cut -d. -f1-3)"
veths_settle 0
# Ten at once.
pids=()
for i in $(seq 1 10); do podman run -d --name c$i --network podnet localhost/bb sleep 120 >/dev/null 2>err.$i & pids+=($!); done
failed=0; for p in "${pids[@]}"; do wait $p || { failed=$((failed + 1)); cat err.*; }; done
echo "parallel failed: $failed"
for i in $(seq 1 10); do podman exec c$i ip -4 -o addr show eth0 | awk '{print $4}'; done | sort -u | wc -l | sed 's/^/parallel distinct: /'
podman rm -fa -t 1 >/dev/null; veths_settle 0
$DB rm podnet >/dev/null
settled_to "$before" && echo "clean after podman"
"#
        ),
        240,
    );
    out.assert_ok();
    out.assert_has(&[
        "network listed: 1",
        "app: 10.89.0.50/24",
        "web: 10.89.0.",
        "app to web: hello from web",
        "app's nameserver: nameserver 10.89.0.1",
        "app to web by name: hello from web",
        "app to the outside: outside saw 10.200.0.1",
        "published: hello from web",
        "after stop: 1 veth",
        "published after start: hello from web",
        "app after restart: 10.89.0.50/24",
        "after kill -9: 1 veth",
        "once: 10.89.0",
        "parallel failed: 0",
        "parallel distinct: 10",
        "clean after podman",
    ]);
}
