"""A stand-in for the host's upstream nameserver, on UDP and TCP: answers
example.test with 203.0.113.7 and NXDOMAIN for everything else.
Usage: dns_upstream.py ADDR COUNT (each transport stops after COUNT queries)."""
import socket
import struct
import sys
import threading

addr, count = sys.argv[1], int(sys.argv[2])


def answer(data):
    qid = struct.unpack(">H", data[:2])[0]
    i, labels = 12, []
    while data[i]:
        labels.append(data[i + 1:i + 1 + data[i]].decode().lower())
        i += 1 + data[i]
    qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
    question = data[12:i + 5]
    if labels == ["example", "test"] and qtype == 1:
        record = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("203.0.113.7")
        rcode, answers = 0, 1
    else:
        record, rcode, answers = b"", 3, 0
    return struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, answers, 0, 0) + question + record


def serve_tcp():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 53))
    s.listen(16)
    for _ in range(count):
        c, _ = s.accept()
        c.settimeout(5)
        length = struct.unpack(">H", c.recv(2, socket.MSG_WAITALL))[0]
        reply = answer(c.recv(length, socket.MSG_WAITALL))
        c.sendall(struct.pack(">H", len(reply)) + reply)
        c.close()


threading.Thread(target=serve_tcp, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((addr, 53))
for _ in range(count):
    data, peer = u.recvfrom(512)
    u.sendto(answer(data), peer)
