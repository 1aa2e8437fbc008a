#!/bin/bash
# The benchmark itself; runs inside the namespace made by netns.sh.
#   run.sh full|smoke OUTDIR
# All three servers run at once, each on a fresh backing directory side by
# side under OUTDIR/work (one filesystem), and nfsbench runs each workload
# against every server in turn (then the direct-I/O limit), so the figures
# compared were measured minutes apart at most on this shared machine.
# Results go to OUTDIR/results.jsonl; server logs to OUTDIR/logs.
# Exit status: non-zero if any workload failed against rwxnfs, or against
# a peer in smoke mode (a peer failing in full mode is reported as such).
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
  ARGS="--size-mib 16 --files 200 --dir-entries 1000 --one-files 50 --one-dir-entries 500 --duration 1s --timeout 60s"
else
  ARGS="--size-mib ${BENCH_SIZE_MIB:-1024} --files 10000 --dir-entries 100000 --one-files ${BENCH_ONE_FILES:-2000} --one-dir-entries 10000 --duration ${BENCH_DURATION:-6s} --timeout 2m --rounds ${BENCH_ROUNDS:-3}"
fi
# BENCH_WORKLOADS picks a subset (nfsbench run --workloads).
[ -n "${BENCH_WORKLOADS:-}" ] && ARGS="$ARGS --workloads $BENCH_WORKLOADS"
say() { echo "== $(date -u +%H:%M:%S) $*" >&2; }
wait_port() { # host port
  for _ in $(seq 100); do (exec 3<>/dev/tcp/$1/$2) 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listening on $1:$2" >&2; return 1
}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT

say "starting rwxnfs nfsd (NFS 2050, its own portmapper on 1111)"
"$BIN/nfsd" --root "$W/rwxnfs" --listen 127.0.0.1:2050 --portmap-listen 127.0.0.1:1111 \
  --metrics-listen 127.0.0.1:9102 ${BENCH_PPROF:+--pprof} --log-level warn > "$LOGS/nfsd.log" 2>&1 &
NFSD=$!; PIDS+=($NFSD)
wait_port 127.0.0.1 2050 || exit 1
# pid=: nfsbench reads each server's CPU use from /proc.
# metrics=: nfsbench counts the calls each operation made from rwxnfs's /metrics.
TARGETS=(--target "label=rwxnfs,export=/volumes/default,portmap-port=1111,backing=$W/rwxnfs/volumes/default,pid=$NFSD,metrics=127.0.0.1:9102")

if [ "${BENCH_PEERS:-1}" = 1 ]; then
  say "starting rpcbind, rpc.statd, nfs-ganesha (VFS FSAL; NFS 2049, MOUNT 20048, NLM 32803)"
  sed "s|@WORK@|$W|g" bench/ganesha.conf.in > "$W/ganesha.conf"
  rpcbind -w; sleep 0.2; PIDS+=($(pidof rpcbind))
  rpc.statd --no-notify; sleep 0.3; PIDS+=($(pidof rpc.statd))
  ganesha.nfsd -f "$W/ganesha.conf" -L "$LOGS/ganesha.log" -p /run/ganesha/ganesha.pid -N NIV_EVENT
  ok=0; for _ in $(seq 100); do rpcinfo -p 127.0.0.1 2>/dev/null | grep -q nlockmgr && { ok=1; break; }; sleep 0.2; done
  GANESHA=$(cat /run/ganesha/ganesha.pid 2>/dev/null); PIDS+=($GANESHA)
  [ $ok = 1 ] || say "ganesha did not register with rpcbind (see $LOGS/ganesha.log)"
  # Ports from rpcbind, as the Linux mount finds them.
  TARGETS+=(--target "label=ganesha,export=/export,backing=$W/ganesha${GANESHA:+,pid=$GANESHA}")

  say "starting go-nfs example/osnfs (NFS and MOUNT on 2051, no portmapper, no NLM)"
  "$BIN/osnfs" "$W/gonfs" 2051 > "$LOGS/osnfs.log" 2>&1 &
  GONFS=$!; PIDS+=($GONFS)
  wait_port 127.0.0.1 2051 || say "go-nfs did not start"
  TARGETS+=(--target "label=go-nfs,export=/,nfs-port=2051,mount-port=2051,no-lock,backing=$W/gonfs,pid=$GONFS")
fi

say "nfsbench run $ARGS"
"$BIN/nfsbench" run "${TARGETS[@]}" --limit-dir "$W/limit" --libnfs "$BIN/libnfs-onecall" $ARGS --json "$RES"
rc=$?
if [ $rc != 0 ]; then
  # In full mode only rwxnfs (and the limits) failing fails the run; the
  # peers' failures are results, shown as "failed" in the report.
  if [ "$MODE" = full ] && ! grep '"error"' "$RES" | grep -qE '"server":"(rwxnfs|limit)"'; then
    say "a peer failed some workloads (see $RES)"; rc=0
  fi
fi
say "done, exit $rc"
exit $rc
