# Helpers for end-to-end tests (sourced inside a throwaway namespace).

# A simulated outside host: namespace `outside` behind veth `uplink`
# (10.200.0.2 and fd00:200::2), the test namespace's default routes
# pointing into it.
make_outside() {
  ip netns add outside
  ip link add uplink type veth peer name eth0 netns outside
  ip addr add 10.200.0.1/24 dev uplink
  ip addr add fd00:200::1/64 dev uplink nodad
  ip link set uplink up
  ip -n outside addr add 10.200.0.2/24 dev eth0
  ip -n outside addr add fd00:200::2/64 dev eth0 nodad
  ip -n outside link set eth0 up
  ip -n outside link set lo up
  ip route add default via 10.200.0.2
  ip -6 route add default via fd00:200::2
}

PIDS=()
# serve NS PORT [udp]: a server in NS answering "NS saw PEER-IP", on
# IPv4 and IPv6 (bounded to 60 s).
serve() {
  local ns=$1 port=$2 proto=${3:-tcp}
  timeout 60 ip netns exec "$ns" python3 - "$ns" "$port" "$proto" <<'PY' &
import socket, sys
ns, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET6, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", port))
seen = lambda peer: peer[0].removeprefix("::ffff:")
if proto == "udp":
    for _ in range(100):
        data, peer = s.recvfrom(100)
        s.sendto(f"{ns} saw {seen(peer)}\n".encode(), peer)
else:
    s.listen(16)
    for _ in range(100):
        c, peer = s.accept()
        c.sendall(f"{ns} saw {seen(peer)}\n".encode())
        c.close()
PY
  PIDS+=($!)
  # Ready once the socket is bound (within 10 s, however loaded the machine).
  local flag=-ltn; [ "$proto" = udp ] && flag=-lun
  for _ in $(seq 200); do
    ip netns exec "$ns" ss -H $flag "sport = :$port" 2>/dev/null | grep -q . && return 0
    sleep 0.05
  done
}

# fetch NS HOST PORT [udp]: connect from NS ("-" = this namespace) and print the reply.
fetch() {
  local ns=$1 host=$2 port=$3 proto=${4:-tcp}
  local exec=(); [ "$ns" = "-" ] || exec=(ip netns exec "$ns")
  timeout 10 "${exec[@]}" python3 - "$host" "$port" "$proto" <<'PY'
import socket, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if proto == "udp":
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(b"hi", address)
    print(s.recv(100).decode().strip())
else:
    s = socket.create_connection((host, port), timeout=3)
    print(s.recv(100).decode().strip())
PY
}

stop_servers() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
