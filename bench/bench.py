"""netsh benchmarks against their peers, measured side by side in one run.

Runs inside the throwaway namespace bench/run.sh makes. Prints tables; never
asserts a time.
"""
import hashlib
import json
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


def container_ip(i, net="10.88"):
    return f"{net}.{(i + 1) // 256}.{(i + 1) % 256}"


RESOLV = "nameserver 8.8.8.8"

# The script's network: its own bridge, subnet, names and ports, so that it
# can run beside a netsh network.
SCRIPT_NET, SCRIPT_BR = "10.87", "br-script"


def script_network_up():
    """The same effect as docker-bridge create with ip, iptables and files:
    the bridge with its NAT, forwarding and isolation rules, route_localnet
    and the shared hosts file."""
    net, br = SCRIPT_NET, SCRIPT_BR
    return [
        f"ip link add {br} type bridge", f"ip addr add {net}.0.1/16 dev {br}", f"ip link set {br} up",
        "sysctl -qw net.ipv4.ip_forward=1", f"sysctl -qw net.ipv4.conf.{br}.route_localnet=1",
        f"iptables -t nat -A POSTROUTING -s {net}.0.0/16 ! -o {br} -j MASQUERADE",
        f"iptables -A FORWARD -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"iptables -A FORWARD -i {br} -j ACCEPT",
        f"iptables -I FORWARD -i {br} -o br-other -j DROP",
        "mkdir -p /etc/netns/.hosts-script && printf '127.0.0.1 localhost\\n' > /etc/netns/.hosts-script/bench",
    ]


def script_network_down():
    net, br = SCRIPT_NET, SCRIPT_BR
    return [
        f"ip link del {br}",
        f"iptables -t nat -D POSTROUTING -s {net}.0.0/16 ! -o {br} -j MASQUERADE",
        f"iptables -D FORWARD -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"iptables -D FORWARD -i {br} -j ACCEPT",
        f"iptables -D FORWARD -i {br} -o br-other -j DROP",
        "rm -rf /etc/netns/.hosts-script",
    ]


def script_container_up(i):
    """docker-bridge connect's effect, 17 commands: the veth in hairpin mode,
    address, route, resolv.conf, hostname, a line in the shared hosts file,
    and a published port's five rules (DNAT in PREROUTING and OUTPUT,
    masquerade of host-made and hairpin traffic, FORWARD accept)."""
    ip, port, c, br = container_ip(i, SCRIPT_NET), 30000 + i, f"s{i}", SCRIPT_BR
    return [
        f"ip netns add {c}",
        f"ip link add v{c} type veth peer name eth0 netns {c}",
        f"ip link set v{c} master {br} up",
        f"ip link set v{c} type bridge_slave hairpin on",
        f"ip -n {c} link set lo up",
        f"ip -n {c} addr add {ip}/16 dev eth0",
        f"ip -n {c} link set eth0 up",
        f"ip -n {c} route add default via {SCRIPT_NET}.0.1",
        f"mkdir -p /etc/netns/{c}",
        f"echo '{RESOLV}' > /etc/netns/{c}/resolv.conf",
        f"echo {c} > /etc/netns/{c}/hostname",
        f"echo '{ip} {c}' >> /etc/netns/.hosts-script/bench && ln -s ../.hosts-script/bench /etc/netns/{c}/hosts",
        f"iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -p tcp --dport {port} -j DNAT --to-destination {ip}:80",
        f"iptables -t nat -A OUTPUT -m addrtype --dst-type LOCAL -p tcp --dport {port} -j DNAT --to-destination {ip}:80",
        f"iptables -t nat -A POSTROUTING -m addrtype --src-type LOCAL -d {ip} -p tcp --dport 80 -j MASQUERADE",
        f"iptables -t nat -A POSTROUTING -s {ip} -d {ip} -p tcp --dport 80 -j MASQUERADE",
        f"iptables -A FORWARD -d {ip} -p tcp --dport 80 -j ACCEPT",
    ]


def script_container_down(i):
    ip, port, c = container_ip(i, SCRIPT_NET), 30000 + i, f"s{i}"
    return [
        f"iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -p tcp --dport {port} -j DNAT --to-destination {ip}:80",
        f"iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -p tcp --dport {port} -j DNAT --to-destination {ip}:80",
        f"iptables -t nat -D POSTROUTING -m addrtype --src-type LOCAL -d {ip} -p tcp --dport 80 -j MASQUERADE",
        f"iptables -t nat -D POSTROUTING -s {ip} -d {ip} -p tcp --dport 80 -j MASQUERADE",
        f"iptables -D FORWARD -d {ip} -p tcp --dport 80 -j ACCEPT",
        f"sed -i '/ {c}$/d' /etc/netns/.hosts-script/bench && rm -rf /etc/netns/{c}",
        f"ip netns del {c}",
    ]


def docker_script_up(n):
    return script_network_up() + [line for i in range(1, n + 1) for line in script_container_up(i)]


def docker_script_down(n):
    return [line for i in range(1, n + 1) for line in script_container_down(i)] + script_network_down()


DB_WASM = os.path.join(RECIPES, "docker-bridge.wasm")


def db(*args, firewall="nftables", env=None):
    sh([NETSH, "--firewall", firewall, "run", "--allow-all", DB_WASM, "--", *args], env=env)


class Agent:
    """`netsh agent` on a private socket, for as long as the `with` lasts."""

    def __init__(self, env=None):
        self.base = env or os.environ

    def __enter__(self):
        self.dir = tempfile.mkdtemp()
        self.env = dict(self.base, NETSH_AGENT_SOCKET=os.path.join(self.dir, "agent.sock"))
        self.proc = subprocess.Popen([NETSH, "agent"], env=self.env, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(self.env["NETSH_AGENT_SOCKET"]):
                return self
            time.sleep(0.01)
        raise RuntimeError("netsh agent did not start")

    def __exit__(self, *_):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir)


def per_call(env=None, n=100):
    """Up and down, one netsh call per container."""
    db("create", "bench", "--subnet", "10.88.0.0/16", env=env)
    times = (
        timed(lambda: [db(*connect_args(i), env=env) for i in range(1, n + 1)]),
        timed(lambda: ([db("disconnect", "bench", f"c{i}", env=env) for i in range(1, n + 1)], wait_no_veth())),
    )
    db("rm", "bench", env=env)
    return times


def connect_args(i):
    return ["connect", "bench", f"c{i}", "--publish", f"{20000 + i}:80"]


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


def each_line(lines):
    """A script run line by line, one shell per line (as a runtime runs commands)."""
    for line in lines:
        sh(line)


def bench_docker_bridge(n=100):
    print(f"\n## docker-bridge, {n} containers with a published port each (down: until no veth remains)")
    print("  every cell is its own run; ratios are peer / netsh one call per container")
    rows = {}
    rows["netsh, one call per container"] = per_call(n=n)
    with Agent() as agent:
        rows["netsh through the agent, one call per container"] = per_call(agent.env, n)
    batch = ["create", "bench", "--subnet", "10.88.0.0/16"]
    for i in range(1, n + 1):
        batch += [";"] + connect_args(i)
    rows["netsh, one invocation"] = (timed(lambda: db(*batch)), timed(lambda: (db("rm", "bench", "--force"), wait_no_veth())))
    script_up, script_down = docker_script_up(n), docker_script_down(n)
    rows["ip+iptables script, a command per step"] = (timed(lambda: each_line(script_up)), timed(lambda: (each_line(script_down), wait_no_veth())))
    if os.path.exists(NETAVARK):
        conf = tempfile.mkdtemp()
        for i in range(1, n + 1):
            with open(os.path.join(conf, f"c{i}.json"), "w") as f:
                f.write(netavark_opts(i))
        rows["netavark 1.4 (iptables), a call per container"] = (timed(lambda: netavark_up(n, conf)), timed(lambda: netavark_down(n, conf)))
        shutil.rmtree(conf)
    floor = sh([os.path.join(ROOT, "target/release/kernel-floor"), str(n)]).split()
    rows["kernel floor (netsh's backend alone)"] = (float(floor[0]) / 1000, float(floor[1]) / 1000)
    base_up, base_down = rows["netsh, one call per container"]
    batch_up, batch_down = rows["netsh, one invocation"]
    print(f"  {'':50} {'up':>10} {'ratio':>7} {'down':>10} {'ratio':>7}")
    for label, (up, down) in rows.items():
        print(f"  {label:50} {up * 1000:8.1f}ms {up / base_up:6.1f}x {down * 1000:8.1f}ms {down / base_down:6.1f}x")
    su, sd = rows["ip+iptables script, a command per step"]
    agent_up, agent_down = rows["netsh through the agent, one call per container"]
    print(f"  through the agent vs the script: up {su / agent_up:.1f}x, down {sd / agent_down:.1f}x")
    netavark = rows.get("netavark 1.4 (iptables), a call per container")
    if netavark:
        print(f"  through the agent vs netavark: up {netavark[0] / agent_up:.1f}x, down {netavark[1] / agent_down:.1f}x")
    print(f"  one invocation vs the script: up {su / batch_up:.1f}x, down {sd / batch_down:.1f}x;"
          f" vs the floor: up {batch_up / rows['kernel floor (netsh' + chr(39) + 's backend alone)'][0]:.1f}x the floor")


def bench_curve(points=(1, 10, 100, 1000), probes=7):
    print(f"\n## per-call cost: connect #k on one network holding k-1 containers")
    print(f"  median of {probes} probes at each k (connect container #k, time it, disconnect it);"
          " the network is filled between points by one unmeasured invocation")
    print("  script: the same container's 17 commands on the same kernel state, as a reference for the kernel's own growth")
    db("create", "bench", "--subnet", "10.88.0.0/16")
    each_line(script_network_up())
    have, rows = 0, []
    for k in points:
        fill = []
        for i in range(have + 1, k):
            fill += [";"] + connect_args(i)
        if fill:
            db(*fill[1:])
            run_script("\n".join(line for i in range(have + 1, k) for line in script_container_up(i)))
        have = k - 1
        ours, script = [], []
        for _ in range(probes):
            ours.append(timed(lambda: db(*connect_args(k))))
            db("disconnect", "bench", f"c{k}")
            script.append(timed(lambda: each_line(script_container_up(k))))
            each_line(script_container_down(k))
        rows.append((k, sorted(ours)[probes // 2], sorted(script)[probes // 2]))
    for k, ours, script in rows:
        print(f"  #{k:<5} netsh {ours * 1000:6.1f} ms   script {script * 1000:6.1f} ms")
    at = {k: (o, sc) for k, o, sc in rows}
    last = max(points)
    print(f"  #{last} / #10: netsh {at[last][0] / at[10][0]:.2f}x, script {at[last][1] / at[10][1]:.2f}x")
    db("rm", "bench", "--force")
    run_script("\n".join(docker_script_down(have)))
    wait_no_veth()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024


def bench_agent(n=1000, probes=5):
    print(f"\n## the agent with {n} containers: resident memory, and one call through it")
    with Agent() as agent:
        env, pid = agent.env, agent.proc.pid
        idle = rss_mib(pid)
        db("create", "bench", "--subnet", "10.88.0.0/16", env=env)
        first = rss_mib(pid)
        for start in range(1, n + 1, 100):
            batch = []
            for i in range(start, min(n, start + 99) + 1):
                batch += [";"] + connect_args(i)
            db(*batch[1:], env=env)
        full = rss_mib(pid)
        calls = []
        for k in range(n + 1, n + 1 + probes):
            calls.append(timed(lambda: db(*connect_args(k), env=env)))
            db("disconnect", "bench", f"c{k}", env=env)
        print(f"  RSS: idle {idle:.1f} MiB, after the first command {first:.1f} MiB, with {n} containers {full:.1f} MiB")
        print(f"  connect #{n + 1} through the agent: median of {probes} probes {sorted(calls)[probes // 2] * 1000:.1f} ms")
        db("rm", "bench", "--force", env=env)
    wait_no_veth()


def bench_podman():
    print("\n## podman run -d (busybox, CNI backend): median wall time of 10 runs per network")
    if not shutil.which("podman"):
        print("  podman is not installed; skipped")
        return
    out = sh(["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private",
              "bash", os.path.join(ROOT, "bench/podman.sh")])
    times = {mode: float(ms) for mode, ms in (line.split() for line in out.splitlines())}
    labels = {"none": "--network none", "podnet": "a netsh network (docker-bridge)",
              "podagent": "the same, through the agent", "refnet": "bridge + host-local + portmap"}
    for mode, label in labels.items():
        over = (times[mode] / times["none"] - 1) * 100
        print(f"  {label:34} {times[mode]:7.1f} ms  {over:+6.1f}% over --network none")


REFERENCE_CNI = "/usr/lib/cni"


def cni_call(plugin, command, conf, i, env_extra=None):
    """One plugin call as libcni makes it: the CNI variables, the config on stdin; returns the stdout JSON."""
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": hashlib.sha256(f"container {i}".encode()).hexdigest(), "CNI_NETNS": f"/run/netns/k{i}",
           "CNI_IFNAME": "eth0", "CNI_PATH": REFERENCE_CNI, "PATH": os.environ["PATH"]}
    env.update(env_extra or {})
    out = subprocess.run([plugin], input=json.dumps(conf), env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{plugin} {command}: {out.stdout} {out.stderr}")
    return json.loads(out.stdout) if out.stdout.strip() else None


def netsh_chain(state, agent_socket=None):
    grants = ["link:br-*", "link:veth*", "link:*/eth*", "link:*/lo", "netns:*", "addr:10.92.0.0/16", "route:0.0.0.0/0",
              "publish:1-65535", "kv:docker-bridge/*", "kv:netsh/dns/*"]
    conf = {"cniVersion": "1.0.0", "name": "cnibench", "type": "netsh", "recipe": DB_WASM, "stateDir": state, "grants": grants}
    if agent_socket:
        conf["agentSocket"] = agent_socket
    return [(NETSH, conf)]


def reference_chain(data_dir):
    bridge = {"cniVersion": "1.0.0", "name": "cniref", "type": "bridge", "bridge": "br-cniref", "isGateway": True, "ipMasq": True,
              "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": "10.93.0.0/16"}]]}}
    portmap = {"cniVersion": "1.0.0", "name": "cniref", "type": "portmap", "capabilities": {"portMappings": True}}
    return [(os.path.join(REFERENCE_CNI, "bridge"), bridge), (os.path.join(REFERENCE_CNI, "portmap"), portmap)]


def chain_add(chain, i):
    """ADD through every plugin of a conflist, each given the previous result."""
    prev = None
    for plugin, conf in chain:
        conf = dict(conf, runtimeConfig={"portMappings": [{"hostPort": 30000 + i, "containerPort": 80, "protocol": "tcp"}]})
        if prev is not None:
            conf["prevResult"] = prev
        prev = cni_call(plugin, "ADD", conf, i) or prev
    return prev


def chain_del(chain, i, result):
    """DEL through the plugins in reverse order, with the ADD's result."""
    for plugin, conf in reversed(chain):
        conf = dict(conf, prevResult=result,
                    runtimeConfig={"portMappings": [{"hostPort": 30000 + i, "containerPort": 80, "protocol": "tcp"}]})
        cni_call(plugin, "DEL", conf, i)


def percentiles(samples):
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def bench_cni(n=100):
    print(f"\n## CNI ADD and DEL, {n} containers, driven as libcni does (env + stdin, one process per plugin)")
    print("  reference: the CNI project's bridge + host-local + portmap conflist; netsh: docker-bridge, one plugin")
    state = tempfile.mkdtemp()
    data_dir = tempfile.mkdtemp()
    db("create", "cnibench", "--subnet", "10.92.0.0/16", env=dict(os.environ, NETSH_STATE_DIR=state))
    rows = {}
    agent = Agent(dict(os.environ, NETSH_STATE_DIR=state))
    with agent:
        chains = [("netsh (docker-bridge)", netsh_chain(state)),
                  ("netsh through the agent", netsh_chain(state, agent.env["NETSH_AGENT_SOCKET"])),
                  ("bridge + host-local + portmap", reference_chain(data_dir))]
        for label, chain in chains:
            rows[label] = cni_round(chain, n)
    print(f"  {'':32} {'ADD p50':>9} {'ADD p99':>9} {'DEL p50':>9} {'DEL p99':>9}")
    for label, ((a50, a99), (d50, d99)) in rows.items():
        print(f"  {label:32} {a50:7.1f}ms {a99:7.1f}ms {d50:7.1f}ms {d99:7.1f}ms")
    (ref_add, _), (ref_del, _) = rows["bridge + host-local + portmap"]
    for label in ["netsh (docker-bridge)", "netsh through the agent"]:
        (add, _), (delete, _) = rows[label]
        print(f"  reference / {label} at p50: ADD {ref_add / add:.1f}x, DEL {ref_del / delete:.1f}x")
    db("rm", "cnibench", "--force", env=dict(os.environ, NETSH_STATE_DIR=state))
    shutil.rmtree(state)
    shutil.rmtree(data_dir)


def cni_round(chain, n):
    """ADD n containers one by one, then DEL them: (p50, p99) of each."""
    adds, dels, results = [], [], {}
    for i in range(1, n + 1):
        sh(["ip", "netns", "add", f"k{i}"])
        adds.append(timed(lambda: results.__setitem__(i, chain_add(chain, i))))
    for i in range(1, n + 1):
        dels.append(timed(lambda: chain_del(chain, i, results[i])))
        sh(["ip", "netns", "del", f"k{i}"])
    return percentiles(adds), percentiles(dels)


def bench_firewall_change(existing=1000):
    # The iptables backend needs iptables' own tables to exist.
    sh(["iptables", "-t", "nat", "-S"])
    print(f"\n## one firewall change (one published port) with {existing} ports already published")
    for firewall in ["nftables", "iptables"]:
        lines = [f"publish tcp {40000 + i} to 10.90.{i // 250}.{i % 250 + 1}:80" for i in range(existing)]
        with tempfile.NamedTemporaryFile("w", suffix=".nsh", delete=False) as f:
            f.write("\n".join(lines) + "\n")
        sh([NETSH, "--firewall", firewall, "--allow-all", "batch", f.name])
        os.unlink(f.name)
        empty = min(timed(lambda: sh([NETSH, "--firewall", firewall, "--allow-all", "-c", "fw ls"])) for _ in range(3))
        change = []
        for k in range(5):
            change.append(timed(lambda: sh([NETSH, "--firewall", firewall, "--allow-all", "-c", f"publish tcp {50000 + k} to 10.91.0.{k + 2}:80"])))
        one = sorted(change)[2]
        print(f"  {firewall:9} netsh -c 'publish ...': {one * 1000:6.1f} ms   (a read-only `-c 'fw ls'` of all {existing}: {empty * 1000:6.1f} ms)")
        if firewall == "nftables":
            sh(["nft", "delete", "table", "ip", "netsh"])
        else:
            sh(["sh", "-c", "iptables-save | grep -v NETSH | iptables-restore"])


def dnsperf(ns, server, queries, *extra):
    """dnsperf from namespace `ns` against `server`: its stdout."""
    return sh(["ip", "netns", "exec", ns, "dnsperf", "-s", server, "-d", queries, "-t", "2", *extra])


def dns_qps(ns, server, queries, seconds=3):
    """Queries per second at full load (dnsperf's own count), and the share answered."""
    out = dnsperf(ns, server, queries, "-l", str(seconds), "-c", "4", "-q", "200")
    qps = float(next(line.split()[-1] for line in out.splitlines() if "Queries per second" in line))
    lost = next(line for line in out.splitlines() if "Queries lost" in line).split()[2]
    return qps, lost


def dns_latency(ns, server, queries, rate=2000, seconds=2):
    """p50 and p99 latency in ms under a bounded load of `rate` queries per second."""
    out = dnsperf(ns, server, queries, "-l", str(seconds), "-Q", str(rate), "-v")
    # "> NOERROR name A 0.000123" per answered query (timeouts end without a latency).
    samples = [float(w[-1]) for w in (line.split() for line in out.splitlines() if line.startswith(">"))
               if w[-1].replace(".", "", 1).isdigit()]
    return percentiles(samples) if samples else (float("nan"), float("nan"))


def bench_dns(n=1000):
    """netsh's resolver against dnsmasq (what podman's dnsname plugin ran) with the same n names."""
    print(f"\n## DNS: netsh's resolver vs dnsmasq, {n} container names, queried with dnsperf from a container")
    work = tempfile.mkdtemp()
    peer_addr, upstream_addr = "10.93.255.250", "10.93.255.251"
    db("create", "dnsb", "--subnet", "10.93.0.0/16")
    for start in range(1, n + 1, 100):
        batch = []
        for i in range(start, min(n, start + 99) + 1):
            batch += [";", "connect", "dnsb", f"d{i}"]
        db(*batch[1:])
    status = json.loads(sh([NETSH, "dns", "status", "--json"]))
    resolver = status["pid"]
    hosts = os.path.join(work, "hosts")
    with open(hosts, "w") as f:
        for i in range(1, n + 1):
            f.write(f"10.93.{(i + 1) // 256}.{(i + 1) % 256} d{i}\n")
        f.write("10.93.255.1 ext.test\n")
    sh(["ip", "addr", "add", f"{peer_addr}/32", "dev", "br-dnsb"])
    sh(["ip", "addr", "add", f"{upstream_addr}/32", "dev", "br-dnsb"])
    # One dnsmasq as the peer (the same names), one as the "host's upstream" netsh forwards to.
    peers = [subprocess.Popen(["timeout", "300", "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                               f"--addn-hosts={hosts}", f"--listen-address={addr}", "--bind-interfaces",
                               "--user=root", "--pid-file=", "--cache-size=1000", "--log-facility=/dev/null"])
             for addr in (peer_addr, upstream_addr)]
    resolv = os.path.join(work, "resolv.conf")
    with open(resolv, "w") as f:
        f.write(f"nameserver {upstream_addr}\n")
    sh(["mount", "--bind", resolv, "/etc/resolv.conf"])
    time.sleep(1.5)  # dnsmasq binds; netsh's resolver rereads resolv.conf within a second
    local = os.path.join(work, "local.txt")
    with open(local, "w") as f:
        f.writelines(f"d{(i * 7919) % n + 1} A\n" for i in range(n))
    forwarded = os.path.join(work, "forwarded.txt")
    with open(forwarded, "w") as f:
        f.write("ext.test A\n")
    try:
        rows = [("container name", "netsh", "10.93.0.1", local), ("container name", "dnsmasq", peer_addr, local),
                ("forwarded name", "netsh -> upstream", "10.93.0.1", forwarded),
                ("forwarded name", "upstream directly", upstream_addr, forwarded)]
        print(f"  {'query':<16} {'server':<18} {'qps (full load)':>16} {'lost':>7} {'p50 ms @2000/s':>15} {'p99 ms @2000/s':>15}")
        for query, server, addr, data in rows:
            qps, lost = dns_qps("d1", addr, data)
            p50, p99 = dns_latency("d1", addr, data)
            print(f"  {query:<16} {server:<18} {qps:>16.0f} {lost:>7} {p50:>15.3f} {p99:>15.3f}")
        print(f"  RSS with {n} names: netsh resolver {rss_mib(resolver):.1f} MiB, dnsmasq {rss_mib(peers[0].pid):.1f} MiB")
    finally:
        for p in peers:
            p.terminate()
            p.wait(timeout=10)
        sh(["umount", "/etc/resolv.conf"])
        db("rm", "dnsb", "--force")
        shutil.rmtree(work)
    wait_no_veth()


def bench_overlay():
    """The overlay recipe on two simulated hosts with etcd: bench/overlay.sh."""
    print("\n## Overlay: two simulated hosts, etcd, agents watching")
    print(sh(["bash", os.path.join(ROOT, "bench/overlay.sh")], timeout=900), end="")


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    steps = {"calls": bench_calls, "guard": bench_guard, "shell": bench_shell, "startup": bench_startup, "netns-bridge": bench_netns_bridge,
             "docker-bridge": bench_docker_bridge, "curve": bench_curve, "firewall": bench_firewall_change, "cni": bench_cni,
             "agent": bench_agent, "podman": bench_podman, "dns": bench_dns,
             "overlay": bench_overlay}
    for name, step in steps.items():
        if which in ("all", name):
            step()


if __name__ == "__main__":
    main()
