"""netsh benchmarks against their peers, measured side by side in one run.

Runs inside the throwaway namespace bench/run.sh makes. Prints tables; never
asserts a time.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETSH = os.path.join(ROOT, "target/release/netsh")
RECIPES = os.path.join(ROOT, "recipes")
GUESTS = os.path.join(ROOT, "target/wasm32-wasip2/guest")
NETAVARK = "/usr/lib/podman/netavark"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, capture_output=True, text=True, **kw).stdout


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def veth_count():
    return len(sh(["ip", "-o", "link", "show", "type", "veth"]).splitlines())


def wait_no_veth(limit=60.0):
    start = time.perf_counter()
    while veth_count() and time.perf_counter() - start < limit:
        time.sleep(0.002)


def run_script(text):
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write("set -e\n" + text)
    try:
        sh(["bash", f.name])
    finally:
        os.unlink(f.name)


def netsh(recipe, *args):
    sh([NETSH, "run", "--allow-all", os.path.join(RECIPES, recipe + ".wasm"), "--", *args])


def bench_calls():
    print("\n## wasm->host call overhead")
    print(sh([os.path.join(ROOT, "target/release/call-overhead"), os.path.join(GUESTS, "callbench.wasm")]))


def bench_guard():
    print("\n## policy + audit + journal overhead")
    print(sh([os.path.join(ROOT, "target/release/guard-overhead"), os.path.join(RECIPES, "docker-bridge.wasm")]))


def bench_shell(n=1000):
    print(f"\n## shell: {n} x `link set X up|down` in one batch vs the same lines through `ip -batch`")
    sh(["ip", "link", "add", "br-shell", "type", "bridge"])
    lines = [f"link set br-shell {'up' if i % 2 == 0 else 'down'}" for i in range(n)]
    with tempfile.TemporaryDirectory() as d:
        nsh, ipb = os.path.join(d, "b.nsh"), os.path.join(d, "b.ip")
        for path in (nsh, ipb):
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
        ours = timed(lambda: sh([NETSH, "batch", "--allow", "link:br-shell", nsh]))
        kernel = timed(lambda: sh(["ip", "-batch", ipb]))
        empty = os.path.join(d, "empty.nsh")
        open(empty, "w").close()
        start = min(timed(lambda: sh([NETSH, "batch", empty])) for _ in range(5))
    sh(["ip", "link", "del", "br-shell"])
    per, floor = ours / n * 1e6, kernel / n * 1e6
    print(f"  netsh batch: {per:7.1f} us/command   ip -batch: {floor:7.1f} us/command   above the kernel: {per - floor:7.1f} us")
    print(f"  shell start-up (empty batch, best of 5): {start * 1000:.1f} ms")


def bench_startup():
    print("## netsh run: cold (first compile) vs warm (cache hit), peak RSS")
    cache = tempfile.mkdtemp()
    env = dict(os.environ, NETSH_CACHE_DIR=cache)
    wasm = os.path.join(RECIPES, "docker-bridge.wasm")
    rows = []
    for label in ["cold", "warm", "warm"]:
        start = time.perf_counter()
        out = subprocess.run(["/usr/bin/time", "-f", "%M", NETSH, "run", "--allow-all", wasm, "--", "ls"],
                             env=env, check=True, capture_output=True, text=True)
        took = time.perf_counter() - start
        rss_kib = int(out.stderr.strip().splitlines()[-1])
        rows.append((label, took, rss_kib))
    shutil.rmtree(cache)
    for label, took, rss in rows:
        print(f"  {label:5} {took * 1000:8.1f} ms   peak RSS {rss / 1024:6.1f} MiB")
    print(f"  cold/warm: {rows[0][1] / rows[1][1]:.1f}x")


def netns_bridge_script(n):
    lines = ["ip link add br0 type bridge", "ip addr add 10.50.0.1/16 dev br0", "ip link set br0 up"]
    for i in range(1, n + 1):
        ns = f"ns{i}"
        addr = f"10.50.{(i + 1) // 256}.{(i + 1) % 256}/16"
        lines += [
            f"ip netns add {ns}",
            f"ip link add veth-{ns} type veth peer name eth0 netns {ns}",
            f"ip link set veth-{ns} master br0 up",
            f"ip -n {ns} link set lo up",
            f"ip -n {ns} addr add {addr} dev eth0",
            f"ip -n {ns} link set eth0 up",
            f"ip -n {ns} route add default via 10.50.0.1",
        ]
    return "\n".join(lines)


def netns_bridge_down_script(n):
    return "\n".join([f"ip netns del ns{i}" for i in range(1, n + 1)] + ["ip link del br0"])


def bench_netns_bridge(n=100):
    print(f"\n## netns-bridge, {n} namespaces: netsh vs the same steps as an ip script")
    args = ["--count", str(n), "--subnet", "10.50.0.0/16", "--prefix", "ns"]
    up_netsh = timed(lambda: netsh("netns-bridge", *args))
    down_netsh = timed(lambda: (netsh("netns-bridge", "down", *args), wait_no_veth()))
    up_sh = timed(lambda: run_script(netns_bridge_script(n)))
    down_sh = timed(lambda: (run_script(netns_bridge_down_script(n)), wait_no_veth()))
    print(f"  up:   netsh {up_netsh * 1000:8.1f} ms   ip script {up_sh * 1000:8.1f} ms   ratio {up_sh / up_netsh:5.1f}x")
    print(f"  down: netsh {down_netsh * 1000:8.1f} ms   ip script {down_sh * 1000:8.1f} ms   ratio {down_sh / down_netsh:5.1f}x")


def container_ip(i):
    return f"10.88.{(i + 1) // 256}.{(i + 1) % 256}"


def docker_script_up(n):
    lines = [
        "ip link add br-bench type bridge", "ip addr add 10.88.0.1/16 dev br-bench", "ip link set br-bench up",
        "sysctl -qw net.ipv4.ip_forward=1",
        "iptables -t nat -A POSTROUTING -s 10.88.0.0/16 ! -o br-bench -j MASQUERADE",
        "iptables -A FORWARD -o br-bench -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "iptables -A FORWARD -i br-bench -j ACCEPT",
    ]
    for i in range(1, n + 1):
        ip, port = container_ip(i), 20000 + i
        lines += [
            f"ip netns add c{i}",
            f"ip link add vc{i} type veth peer name eth0 netns c{i}",
            f"ip link set vc{i} master br-bench up",
            f"ip -n c{i} link set lo up",
            f"ip -n c{i} addr add {ip}/16 dev eth0",
            f"ip -n c{i} link set eth0 up",
            f"ip -n c{i} route add default via 10.88.0.1",
            f"iptables -t nat -A PREROUTING -p tcp --dport {port} -j DNAT --to-destination {ip}:80",
            f"iptables -t nat -A OUTPUT -p tcp --dport {port} -j DNAT --to-destination {ip}:80",
            f"iptables -A FORWARD -d {ip} -p tcp --dport 80 -j ACCEPT",
        ]
    return "\n".join(lines)


def docker_script_down(n):
    lines = []
    for i in range(1, n + 1):
        ip, port = container_ip(i), 20000 + i
        lines += [
            f"iptables -t nat -D PREROUTING -p tcp --dport {port} -j DNAT --to-destination {ip}:80",
            f"iptables -t nat -D OUTPUT -p tcp --dport {port} -j DNAT --to-destination {ip}:80",
            f"iptables -D FORWARD -d {ip} -p tcp --dport 80 -j ACCEPT",
            f"ip netns del c{i}",
        ]
    lines += [
        "ip link del br-bench",
        "iptables -t nat -D POSTROUTING -s 10.88.0.0/16 ! -o br-bench -j MASQUERADE",
        "iptables -D FORWARD -o br-bench -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "iptables -D FORWARD -i br-bench -j ACCEPT",
    ]
    return "\n".join(lines)


def connect_args(i):
    return ["connect", "bench", f"c{i}", "--publish", f"{20000 + i}:80"]


def netsh_docker_up(n):
    """One netsh invocation per step, as a user typing `docker network` commands would."""
    netsh("docker-bridge", "create", "bench", "--subnet", "10.88.0.0/16")
    for i in range(1, n + 1):
        netsh("docker-bridge", *connect_args(i))


def netsh_docker_up_batched(n):
    """All steps in one invocation (';'-separated commands), like `docker compose up`."""
    args = ["create", "bench", "--subnet", "10.88.0.0/16"]
    for i in range(1, n + 1):
        args += [";"] + connect_args(i)
    netsh("docker-bridge", *args)


def netsh_docker_down(n):
    netsh("docker-bridge", "rm", "bench", "--force")
    wait_no_veth()


NETAVARK_NET = """{
  "name": "bench", "id": "%s", "driver": "bridge", "network_interface": "nvbench",
  "subnets": [{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}],
  "ipv6_enabled": false, "internal": false, "dns_enabled": false,
  "ipam_options": {"driver": "host-local"}
}""" % ("ab" * 32)


def netavark_opts(i):
    return """{"container_id": "%s", "container_name": "c%d",
  "networks": {"bench": {"interface_name": "eth0", "static_ips": ["%s"]}},
  "network_info": {"bench": %s},
  "port_mappings": [{"host_ip": "", "container_port": 80, "host_port": %d, "range": 1, "protocol": "tcp"}]}""" % (
        "%064x" % i, i, container_ip(i), NETAVARK_NET, 20000 + i)


def netavark_up(n, conf):
    for i in range(1, n + 1):
        sh(["ip", "netns", "add", f"c{i}"])
        sh([NETAVARK, "--config", conf, "--file", os.path.join(conf, f"c{i}.json"), "setup", f"/run/netns/c{i}"])


def netavark_down(n, conf):
    for i in range(1, n + 1):
        sh([NETAVARK, "--config", conf, "--file", os.path.join(conf, f"c{i}.json"), "teardown", f"/run/netns/c{i}"])
        sh(["ip", "netns", "del", f"c{i}"])
    wait_no_veth()


def bench_docker_bridge():
    print("\n## docker-bridge: N containers, one published port each (down: until no veth remains)")
    have_netavark = os.path.exists(NETAVARK)
    print("  netsh: one invocation for all steps; netsh/1: one invocation per step; ratios are peer/netsh")
    header = f"  {'N':>4} {'':5} {'netsh':>10} {'netsh/1':>10} {'ip+iptables':>12} {'ratio':>7}"
    if have_netavark:
        header += f" {'netavark':>10} {'ratio':>7}"
    print(header)
    for n in [1, 10, 100]:
        one_by_one = timed(lambda: netsh_docker_up(n))
        netsh_docker_down(n)
        up = timed(lambda: netsh_docker_up_batched(n))
        down = timed(lambda: netsh_docker_down(n))
        sh_up = timed(lambda: run_script(docker_script_up(n)))
        sh_down = timed(lambda: (run_script(docker_script_down(n)), wait_no_veth()))
        nv = None
        if have_netavark:
            conf = tempfile.mkdtemp()
            for i in range(1, n + 1):
                with open(os.path.join(conf, f"c{i}.json"), "w") as f:
                    f.write(netavark_opts(i))
            nv = (timed(lambda: netavark_up(n, conf)), timed(lambda: netavark_down(n, conf)))
            shutil.rmtree(conf)
        for label, ours, single, script, peer in [("up", up, one_by_one, sh_up, nv and nv[0]),
                                                  ("down", down, down, sh_down, nv and nv[1])]:
            row = (f"  {n:>4} {label:5} {ours * 1000:8.1f}ms {single * 1000:8.1f}ms"
                   f" {script * 1000:10.1f}ms {script / ours:6.1f}x")
            if peer is not None:
                row += f" {peer * 1000:8.1f}ms {peer / ours:6.1f}x"
            print(row)


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    steps = {"calls": bench_calls, "guard": bench_guard, "shell": bench_shell, "startup": bench_startup, "netns-bridge": bench_netns_bridge,
             "docker-bridge": bench_docker_bridge}
    for name, step in steps.items():
        if which in ("all", name):
            step()


if __name__ == "__main__":
    main()
