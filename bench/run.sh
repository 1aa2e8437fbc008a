#!/bin/bash
# The benchmark itself; runs inside the namespace made by netns.sh.
#   run.sh full|smoke OUTDIR
# Backing directories for every server and for the direct-I/O limits are
# fresh directories side by side under OUTDIR/work (one filesystem).
# Results go to OUTDIR/results.jsonl; server logs to OUTDIR/logs.
# Exit status: non-zero if any workload against rwxnfs failed, or (in
# full mode) if a peer could not be run at all.
set -uo pipefail
MODE=$1; OUT=$(realpath -m "$2"); BIN=$(realpath build)
W=$OUT/work; LOGS=$OUT/logs; RES=$OUT/results.jsonl
rm -rf "$W" "$LOGS"; mkdir -p "$W"/{rwxnfs,ganesha,ganesha-state,gonfs,limit} "$LOGS"; : > "$RES"

# Private /run and /var/lib/nfs: rpcbind, statd and ganesha state never
# touches the host's (ip netns exec gave us a mount namespace of our own).
mount -t tmpfs none /run; mount -t tmpfs none /var/lib/nfs
mkdir -p /run/rpcbind /run/ganesha /var/lib/nfs/sm /var/lib/nfs/sm.bak /var/lib/nfs/ganesha
chown _rpc /run/rpcbind 2>/dev/null || true

if [ "$MODE" = smoke ]; then
  ARGS="--size-mib 16 --files 200 --dir-entries 1000 --duration 1s --timeout 60s"
  LIMITS="--size-mib 16 --duration 1s"
else
  ARGS="--size-mib ${BENCH_SIZE_MIB:-1024} --files 10000 --dir-entries 100000 --duration ${BENCH_DURATION:-8s} --timeout 4m"
  LIMITS="--size-mib ${BENCH_SIZE_MIB:-1024} --duration ${BENCH_DURATION:-8s}"
fi
NB="$BIN/nfsbench"
rc=0
say() { echo "== $(date -u +%H:%M:%S) $*" >&2; }

wait_port() { # host port
  for _ in $(seq 100); do (exec 3<>/dev/tcp/$1/$2) 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listening on $1:$2" >&2; return 1
}
stop() { # pid...
  for p in "$@"; do kill "$p" 2>/dev/null; done
  for p in "$@"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null; done
  true
}

say "limits (direct I/O on $W/limit, RPC echo server)"
$NB limits --dir "$W/limit" $LIMITS --json "$RES" || rc=1

say "rwxnfs nfsd"
"$BIN/nfsd" --root "$W/rwxnfs" --listen 127.0.0.1:2049 --portmap-listen 127.0.0.1:111 \
  --metrics-listen 127.0.0.1:9102 ${BENCH_PPROF:+--pprof} --log-level warn > "$LOGS/nfsd.log" 2>&1 &
NFSD=$!
if wait_port 127.0.0.1 2049; then
  # Ports from rwxnfs's own portmapper, as a client would find them.
  $NB run --label rwxnfs --export /volumes/default --backing "$W/rwxnfs/volumes/default" $ARGS --json "$RES" || rc=1
else rc=1; fi
stop $NFSD

if [ "${BENCH_PEERS:-1}" = 1 ]; then
  say "nfs-ganesha (VFS FSAL)"
  sed "s|@WORK@|$W|g" bench/ganesha.conf.in > "$W/ganesha.conf"
  rpcbind -w; sleep 0.2; RPCB=$(pidof rpcbind)
  rpc.statd --no-notify; sleep 0.3; STATD=$(pidof rpc.statd)
  ganesha.nfsd -f "$W/ganesha.conf" -L "$LOGS/ganesha.log" -p /run/ganesha/ganesha.pid -N NIV_EVENT
  ok=0; for _ in $(seq 100); do rpcinfo -p 127.0.0.1 2>/dev/null | grep -q nlockmgr && { ok=1; break; }; sleep 0.2; done
  if [ $ok = 1 ]; then
    $NB run --label ganesha --export /export --backing "$W/ganesha" $ARGS --json "$RES" || say "ganesha: some workloads failed (see results)"
  else say "ganesha did not start (see $LOGS/ganesha.log)"; [ "$MODE" = full ] && rc=1; fi
  stop $(cat /run/ganesha/ganesha.pid 2>/dev/null) $STATD $RPCB

  say "go-nfs example/osnfs"
  "$BIN/osnfs" "$W/gonfs" 2049 > "$LOGS/osnfs.log" 2>&1 &
  GONFS=$!
  if wait_port 127.0.0.1 2049; then
    # go-nfs serves MOUNT on the NFS port, has no portmapper and no NLM.
    $NB run --label go-nfs --export / --nfs-port 2049 --mount-port 2049 --no-lock --backing "$W/gonfs" $ARGS --json "$RES" || say "go-nfs: some workloads failed (see results)"
  else [ "$MODE" = full ] && rc=1; fi
  stop $GONFS
fi
rm -rf "$W"
exit $rc
