#!/bin/bash
# Run a command inside a fresh network namespace of our own ("rwxbench", or
# $RWXNFS_BENCH_NETNS so two checkouts can run side by side):
# loopback plus a port-less bridge with a private address (ganesha wants an
# interface besides lo). Nothing in it routes anywhere else.
set -euo pipefail
NS=${RWXNFS_BENCH_NETNS:-rwxbench}
ip netns del $NS 2>/dev/null || true
ip netns add $NS
trap 'ip netns del $NS 2>/dev/null || true' EXIT
ip netns exec $NS sh -c 'ip link set lo up; ip link add br0 type bridge; ip addr add 10.203.0.1/24 dev br0; ip link set br0 up'
ip netns exec $NS "$@"
