#!/bin/bash
# Profiles of the servers under the one-call workloads and the lock
# workload: where each operation's time goes. Runs inside the namespace
# made by netns.sh (`make bench-profile` does both):
#   profile.sh OUTDIR
# Environment:
#   PROFILE_FS         host (default): the servers' directories on this
#                      machine's filesystem, as make bench; ext4 or xfs: a
#                      fresh loop-mounted image of that filesystem made with
#                      mkfs's defaults (so with a journal), on the same disk
#   PROFILE_SERVERS    rwxnfs (default) or rwxnfs,ganesha
#   PROFILE_WORKLOADS  nfsbench --workloads (default one-meta,one-readdir,lock)
#   PROFILE_FILES      files of the one-call workloads (default 5000)
#   PROFILE_PASSES     perf,allocs,strace (default): a fresh set of servers for
#                      each; empty: only the sync-probe
#   NFSD_ENV           environment for nfsd, e.g. GOMAXPROCS=1
#   PROFILE_PROBE_ROUNDS  rounds of the sync-probe (default 3)
# Then nfsbench sync-probe measures what making a create durable costs on
# the same filesystem, in the ways issue 12 weighs.
# perf pass: perf record -g (cpu-clock) of the server for each measured
# phase. allocs pass: rwxnfs's heap profile at the start and end of each,
# nfsd run with GODEBUG=memprofilerate=1 so every allocation is counted.
# strace pass: strace -f -c -w of the server for each measured phase: how
# many of each system call, and the wall time spent in them (strace slows
# every call, so its figures are counts, not speed).
# Results: OUTDIR/<pass>/results.jsonl and OUTDIR/<pass>/<server>-<phase>.*;
# bench/profile-summary.sh OUTDIR turns them into tables.
set -uo pipefail
OUT=$(realpath -m "$1"); BIN=$(realpath build)
FS=${PROFILE_FS:-host}
SERVERS=${PROFILE_SERVERS:-rwxnfs}
WORKLOADS=${PROFILE_WORKLOADS:-one-meta,one-readdir,lock}
FILES=${PROFILE_FILES:-5000}
PASSES=${PROFILE_PASSES-perf,allocs,strace}
rm -rf "$OUT"; mkdir -p "$OUT"
source bench/servers.sh
private_state
export BENCH_PPROF=1

# The backing filesystem. A loop image lives beside the results, on the
# machine's disk; ip netns exec gave us a mount namespace of our own, so
# the mount is gone when we are.
W=$OUT/work; LOGS=$OUT/logs; mkdir -p "$W" "$LOGS"
MNT=""
if [ "$FS" != host ]; then
  truncate -s 8G "$OUT/fs.img"
  case $FS in
  ext4) mkfs.ext4 -q -F "$OUT/fs.img" ;;
  xfs) mkfs.xfs -q -f "$OUT/fs.img" ;;
  *) echo "PROFILE_FS: host, ext4 or xfs" >&2; exit 2 ;;
  esac
  MNT=$W/mnt; mkdir -p "$MNT"; mount -o loop "$OUT/fs.img" "$MNT" || exit 1
  W=$MNT
fi
cleanup() { stop_servers; [ -n "$MNT" ] && umount "$MNT"; rm -f "$OUT/fs.img"; }
trap cleanup EXIT
{
  echo "filesystem: $FS ($(findmnt -no FSTYPE,OPTIONS -T "$W"))"
  [ -d /proc/fs/jbd2 ] && echo "ext4 journals: $(ls /proc/fs/jbd2 | xargs)"
  echo "nfsd: $(git rev-parse --short HEAD)"
  echo "files: $FILES; workloads: $WORKLOADS; servers: $SERVERS${NFSD_ENV:+; nfsd environment: $NFSD_ENV}"
} > "$OUT/setup.txt"

for pass in ${PASSES//,/ }; do
  say "$pass pass"
  rm -rf "$W"/{rwxnfs,ganesha,ganesha-state}; mkdir -p "$W"/{rwxnfs,ganesha}
  TARGETS=()
  env=${NFSD_ENV:-}
  [ "$pass" = allocs ] && env="$env GODEBUG=memprofilerate=1"
  NFSD_ENV=$env start_rwxnfs "$W/rwxnfs" || exit 1
  export PID_rwxnfs=$NFSD
  if [[ ,$SERVERS, == *,ganesha,* ]]; then
    start_ganesha "$W/ganesha"
    export PID_ganesha=$GANESHA
  fi
  mkdir -p "$OUT/$pass"
  PROFILE_PASS=$pass PROFILE_DIR=$OUT "$BIN/nfsbench" run "${TARGETS[@]}" --workloads "$WORKLOADS" \
    --one-files "$FILES" --one-dir-entries 10000 --size-mib 64 --duration 6s --timeout 10m \
    --hook "$(realpath bench/profile-hook.sh)" --json "$OUT/$pass/results.jsonl" || exit 1
  stop_servers
done
# What durability costs on this filesystem, done the ways issue 12 weighs.
say "sync-probe"
"$BIN/nfsbench" sync-probe --dir "$W" --ops 2000 --conc 16 --rounds "${PROFILE_PROBE_ROUNDS:-3}" --json "$OUT/sync-probe.jsonl"
say "profiles in $OUT"
