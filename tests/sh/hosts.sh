# Simulated hosts for multi-host tests (sourced inside a throwaway namespace).
# Each host is a network namespace with a mount namespace of its own
# (private /run/netns, /etc/netns and netsh state), held by a sleeping
# process; `on HOST CMD...` runs a command there. Hosts sit on bridge
# `underlay` (192.168.50.0/24, this namespace is 192.168.50.1 and their
# default gateway); etcd runs in namespace `kvstore` on 192.168.50.100.

HOLDERS=()
declare -A HOST_PID=()

# make_hosts N: hosts h1..hN on 192.168.50.11..(10+N).
make_hosts() {
  ip link add underlay type bridge
  ip addr add 192.168.50.1/24 dev underlay
  ip link set underlay up
  sysctl -qw net.ipv4.ip_forward=1
  for i in $(seq "$1"); do
    add_underlay_ns "h$i" "192.168.50.$((10 + i))"
    ip netns exec "h$i" unshare --mount --propagation private -- bash -c '
      mount -t tmpfs tmpfs /run/netns; mount -t tmpfs tmpfs /etc/netns; exec sleep 600' &
    HOLDERS+=($!)
    HOST_PID[h$i]=$!
  done
  # Ready once every holder has its own mounts.
  for h in "${!HOST_PID[@]}"; do
    for _ in $(seq 100); do
      [ "$(readlink /proc/${HOST_PID[$h]}/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ] && sleep 0.05 && break
      sleep 0.05
    done
  done
}

# add_underlay_ns NS IP: a namespace on the underlay with default route via this one.
add_underlay_ns() {
  local ns=$1 ip=$2
  ip netns add "$ns"
  ip link add "ul-$ns" type veth peer name eth0 netns "$ns"
  ip link set "ul-$ns" master underlay up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" route add default via 192.168.50.1
}

# on HOST CMD...: run CMD inside HOST's network and mount namespaces, with its own netsh state.
on() {
  local h=$1; shift
  NETSH_STATE_DIR="$work/state-$h" nsenter -t "${HOST_PID[$h]}" --net --mount -- "$@"
}

# start_etcd: a single-member etcd on 192.168.50.100:2379, its data on tmpfs.
start_etcd() {
  add_underlay_ns kvstore 192.168.50.100
  mkdir -p "$work/etcd"
  timeout 300 ip netns exec kvstore etcd --name kv --data-dir "$work/etcd" \
    --listen-client-urls http://192.168.50.100:2379 --advertise-client-urls http://192.168.50.100:2379 \
    --listen-peer-urls http://192.168.50.100:2380 --initial-advertise-peer-urls http://192.168.50.100:2380 \
    --initial-cluster kv=http://192.168.50.100:2380 --heartbeat-interval 10 --election-timeout 100 \
    >"$work/etcd.log" 2>&1 &
  ETCD_PID=$!
  HOLDERS+=($ETCD_PID)
  for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints http://192.168.50.100:2379 endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "etcd did not start"; cat "$work/etcd.log"; return 1
}

stop_hosts() {
  for h in "${!HOST_PID[@]}"; do on "$h" "$NETSH" dns stop >/dev/null 2>&1 || true; done
  # A stopped process (a frozen etcd) takes SIGTERM only once continued.
  # Children too: a holder may be a subshell whose command (an agent) runs under it.
  for p in "${HOLDERS[@]}"; do
    pkill -CONT -P "$p" 2>/dev/null || true; kill -CONT "$p" 2>/dev/null || true
    pkill -TERM -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true
  done
  for p in "${HOLDERS[@]}"; do wait "$p" 2>/dev/null || true; done
  HOLDERS=()
}
