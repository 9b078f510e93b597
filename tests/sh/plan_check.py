"""Check each operation of a `netsh plan --json` against the kernel after the
real run: every planned change must be visible there. Prints one line per
mismatch and `KERNEL OK N` when all N operations check out."""
import json
import os
import re
import sqlite3
import subprocess
import sys

NETSH = sys.argv[2]
STORE = os.path.join(os.environ["NETSH_STATE_DIR"], "kv.sqlite")


def timeless(value):
    """A record without the moment it was written (`created=...`): the one
    value a plan cannot know before its run."""
    return re.sub(r"created=\S+", "created=T", value) if isinstance(value, str) else value


def kv_value(key):
    with sqlite3.connect(STORE) as db:
        row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return timeless(row[0]) if row else None


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def ip(ns, *args):
    prefix = ["-n", ns] if ns else []
    return json.loads(run("ip", "-j", *prefix, *args) or "[]")


def link(ns, name):
    found = ip(ns, "-d", "link", "show", "dev", name)
    return found[0] if found else None


def sysctl(ns, key):
    path = "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))
    cmd = ["ip", "netns", "exec", ns, "cat", path] if ns else ["cat", path]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def rules(ns):
    views = json.loads(run(NETSH, "show", *(["-n", ns] if ns else []), "--json"))["namespaces"]
    return [r for v in views if v["name"] == ns for r in v["rules"]]


def check(op):
    kind, ns = op["op"], op.get("ns")
    if kind == "netns-create":
        return op["name"] in run("ip", "netns", "list").split()
    if kind == "link-add-bridge":
        l = link(ns, op["name"])
        return l is not None and l.get("linkinfo", {}).get("info_kind") == "bridge"
    if kind == "link-add-veth":
        spec = op["spec"]
        end = link(ns, spec["name"])
        return end is not None and end.get("master") == spec["master"] and link(spec["peer_ns"], spec["peer"]) is not None
    if kind == "link-set-up":
        l = link(ns, op["name"])
        return l is not None and ("UP" in l["flags"]) == op["up"]
    if kind == "link-set-alias":
        l = link(ns, op["name"])
        return l is not None and l.get("ifalias") == op["alias"]
    if kind == "addr-add":
        local, prefix = op["cidr"].split("/")
        infos = [a for l in ip(ns, "addr", "show", "dev", op["dev"]) for a in l["addr_info"]]
        return any(a["local"] == local and str(a["prefixlen"]) == prefix for a in infos)
    if kind == "route-add":
        r = op["route"]
        want = "default" if r["dest"].endswith("/0") else r["dest"]
        return any(x["dst"] == want and x.get("gateway") == r["via"] for x in ip(ns, "route", "show"))
    if kind == "sysctl-set":
        return sysctl(ns, op["key"]) == op["value"]
    if kind == "fw-add":
        return any(x["owner"] == op["owner"] and x["rule"] == op["rule"] for x in rules(ns))
    if kind in ("kv-create", "kv-put", "kv-swap"):
        return kv_value(op["key"]) == timeless(LAST_WRITE[op["key"]])
    if kind == "kv-delete":
        return kv_value(op["key"]) is None
    if kind == "hosts-add":
        with open(f"/etc/netns/.hosts/{op['group']}") as f:
            return op["line"] in f.read().splitlines()
    if kind == "hosts-share":
        return os.readlink(f"/etc/netns/{op['name']}/hosts") == f"../.hosts/{op['group']}"
    if kind == "netns-write-etc":
        name = {"hosts": "hosts", "resolv-conf": "resolv.conf", "hostname": "hostname"}[op["file"]]
        with open(f"/etc/netns/{op['name']}/{name}") as f:
            return f.read() == op["contents"]
    print(f"KERNEL-UNCHECKED {kind}")
    return False


plan = json.load(open(sys.argv[1]))
# A key's final value is that of the last write the plan made to it.
LAST_WRITE = {e["call"]["key"]: e["call"].get("value") for e in plan["ops"] if e["call"]["op"].startswith("kv-")}
ok = 0
for entry in plan["ops"]:
    if check(entry["call"]):
        ok += 1
    else:
        print(f"KERNEL-MISMATCH {entry['cmd']}")
print(f"KERNEL OK {ok} of {len(plan['ops'])}")
