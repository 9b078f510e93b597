# podman (CNI backend) private to a sandbox with its own mount and PID
# namespaces: state on tmpfs, the netsh binary as CNI plugin `netsh`, network
# podnet's conflist, and localhost/bb, a busybox image built offline.
# Needs $work, $NETSH, $NETSH_STATE_DIR, $RECIPES and $DB_GRANTS.
for d in /run /var/lib/cni /var/lib/containers /etc/cni/net.d /var/tmp /etc/containers/networks; do
  mkdir -p $d; mount -t tmpfs tmpfs $d
done
mkdir -p /run/netns; mount -t tmpfs tmpfs /run/netns
umount /sys/fs/cgroup/unified 2>/dev/null || true
mkdir -p $work/cni-bin; ln -s $NETSH $work/cni-bin/netsh
cat >$work/containers.conf <<EOF
[containers]
cgroups = "disabled"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$work/cni-bin", "/usr/lib/cni"]
EOF
export CONTAINERS_CONF=$work/containers.conf
grants=$(python3 -c 'import json,sys; a=sys.argv[1].split(); print(json.dumps(a[1::2]))' "$DB_GRANTS")
cat >/etc/cni/net.d/podnet.conflist <<EOF
{"cniVersion": "1.0.0", "name": "podnet", "plugins": [
  {"type": "netsh", "recipe": "$RECIPES/docker-bridge.wasm", "stateDir": "$NETSH_STATE_DIR",
   "grants": $grants, "capabilities": {"portMappings": true, "aliases": true}}]}
EOF
# busybox as an image, offline: every applet a link, a page for httpd.
mkdir -p $work/rootfs/bin $work/rootfs/etc $work/rootfs/www
cp /bin/busybox $work/rootfs/bin/
for a in $(/bin/busybox --list); do [ $a = busybox ] || ln -sf busybox $work/rootfs/bin/$a; done
echo 'root:x:0:0:root:/:/bin/sh' >$work/rootfs/etc/passwd; echo 'root:x:0:' >$work/rootfs/etc/group
echo hello from web >$work/rootfs/www/index.html
tar --numeric-owner -C $work/rootfs -cf $work/bb.tar .
podman import -q $work/bb.tar localhost/bb >/dev/null
veths() { ip -o link show type veth | grep -c '^[0-9]*: veth' || true; }
# Wait (up to 10 s) until $1 veths remain: podman tears down asynchronously.
veths_settle() { for _ in $(seq 100); do [ "$(veths)" = "$1" ] && return 0; sleep 0.1; done; echo "veths: $(veths), wanted $1"; }
http() { ip netns exec outside python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())' "$1"; }
