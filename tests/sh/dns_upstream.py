"""A stand-in for the host's upstream nameserver: answers example.test with
203.0.113.7 and NXDOMAIN for everything else. Usage: dns_upstream.py ADDR COUNT
(stops after COUNT queries)."""
import socket
import struct
import sys

addr, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 53))
for _ in range(count):
    data, peer = s.recvfrom(512)
    qid = struct.unpack(">H", data[:2])[0]
    i, labels = 12, []
    while data[i]:
        labels.append(data[i + 1:i + 1 + data[i]].decode().lower())
        i += 1 + data[i]
    qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
    question = data[12:i + 5]
    if labels == ["example", "test"] and qtype == 1:
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("203.0.113.7")
        rcode, answers = 0, 1
    else:
        answer, rcode, answers = b"", 3, 0
    header = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, answers, 0, 0)
    s.sendto(header + question + answer, peer)
