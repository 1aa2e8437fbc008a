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
rm -rf "$W" "$LOGS"; mkdir -p "$W"/{rwxnfs,ganesha,gonfs,limit} "$LOGS"; : > "$RES"
source bench/servers.sh
private_state

if [ "$MODE" = smoke ]; then
  ARGS="--size-mib 16 --files 200 --dir-entries 1000 --one-files 50 --one-dir-entries 500 --duration 1s --one-duration 1s --timeout 60s"
else
  ARGS="--size-mib ${BENCH_SIZE_MIB:-1024} --files 10000 --dir-entries 100000 --one-files ${BENCH_ONE_FILES:-2000} --one-dir-entries 10000 --duration ${BENCH_DURATION:-6s} --timeout 2m --rounds ${BENCH_ROUNDS:-3}"
fi
# BENCH_WORKLOADS picks a subset (nfsbench run --workloads).
[ -n "${BENCH_WORKLOADS:-}" ] && ARGS="$ARGS --workloads $BENCH_WORKLOADS"
trap 'stop_servers; rm -rf "$W"' EXIT

start_rwxnfs "$W/rwxnfs" || exit 1
if [ "${BENCH_PEERS:-1}" = 1 ]; then
  start_ganesha "$W/ganesha"
  start_gonfs "$W/gonfs"
fi

# The cheapest server there is, a process of its own like the others: the
# limits' NULLs go to it.
"$BIN/nfsbench" echo --listen 127.0.0.1:2098 > "$LOGS/echo.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.1 2098 || exit 1

say "nfsbench run $ARGS"
"$BIN/nfsbench" run "${TARGETS[@]}" --limit-dir "$W/limit" --echo-addr 127.0.0.1:2098 --libnfs "$BIN/libnfs-onecall" $ARGS --json "$RES"
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
