"""Stop etcd (SIGSTOP) as soon as a key under PREFIX is written, so the
writer's next request meets a store that takes connections but never
answers. Prints "watching" once etcd confirmed the watch; gives up after
60 s. Usage: freeze_etcd.py ENDPOINT PREFIX ETCD_PID"""
import base64
import json
import os
import signal
import sys
import urllib.request

endpoint, prefix, pid = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
range_end = prefix[:-1] + bytes([prefix[-1] + 1])
b64 = lambda b: base64.b64encode(b).decode()
body = json.dumps({"create_request": {"key": b64(prefix), "range_end": b64(range_end)}}).encode()
request = urllib.request.Request(f"{endpoint}/v3/watch", data=body, method="POST")
with urllib.request.urlopen(request, timeout=60) as stream:
    for line in stream:
        result = json.loads(line).get("result", {})
        if result.get("created"):
            print("watching", flush=True)
        elif result.get("events"):
            os.kill(pid, signal.SIGSTOP)
            print("stopped etcd", flush=True)
            break
