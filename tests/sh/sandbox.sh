# Re-run the calling script inside a throwaway network + mount namespace with
# private /run/netns and /etc/netns and lo up; the caller's network is untouched.
# Usage, near the top of a script:  source tests/sh/sandbox.sh "$0" "$@"
if [ "${NETSH_SANDBOXED:-}" != 1 ]; then
  exec env NETSH_SANDBOXED=1 unshare --net --mount --propagation private -- "$@"
fi
mkdir -p /run/netns /etc/netns
mount -t tmpfs tmpfs /run/netns
mount -t tmpfs tmpfs /etc/netns
ip link set lo up
