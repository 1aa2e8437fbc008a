# Starting the servers compared, for run.sh and profile.sh (sourced; runs
# inside the namespace netns.sh made). Each start_* function adds the
# server's pid to PIDS and a --target for nfsbench to TARGETS, and sets
# NFSD, GANESHA or GONFS to the server's pid. BIN, W (work directory) and
# LOGS must be set.

PIDS=(); TARGETS=()
say() { echo "== $(date -u +%H:%M:%S) $*" >&2; }
wait_port() { # host port
  for _ in $(seq 100); do (exec 3<>/dev/tcp/$1/$2) 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listening on $1:$2" >&2; return 1
}
stop_servers() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null; done
  PIDS=()
}

# Private /run and /var/lib/nfs: rpcbind, statd and ganesha state never
# touches the host's (ip netns exec gave us a mount namespace of our own).
private_state() {
  mount -t tmpfs none /run; mount -t tmpfs none /var/lib/nfs
  mkdir -p /run/rpcbind /run/ganesha /var/lib/nfs/sm /var/lib/nfs/sm.bak /var/lib/nfs/ganesha
  chown _rpc /run/rpcbind 2>/dev/null || true
}

# start_rwxnfs DIR [LABEL [OFFSET]]: nfsd serving DIR on NFS port 2050
# with its own portmapper on 1111 and /metrics (and /debug/pprof with
# BENCH_PPROF=1) on 9102, each port plus OFFSET (default 0), labelled
# LABEL (default rwxnfs). NFSD_BIN is the binary (default $BIN/nfsd),
# NFSD_ENV (e.g. GOMAXPROCS=1) goes to its environment.
start_rwxnfs() {
  local dir=$1 label=${2:-rwxnfs} off=${3:-0}
  local nfs=$((2050 + off)) pm=$((1111 + off)) metrics=$((9102 + off))
  say "starting $label: nfsd (NFS $nfs, its own portmapper on $pm)${NFSD_ENV:+ with $NFSD_ENV}${NFSD_BIN:+, $NFSD_BIN}"
  # serve: builds before the serve command ignore the word; --root must
  # exist (no --init, which they lack).
  mkdir -p "$dir"
  env ${NFSD_ENV:-} "${NFSD_BIN:-$BIN/nfsd}" serve --root "$dir" --listen 127.0.0.1:$nfs --portmap-listen 127.0.0.1:$pm \
    --metrics-listen 127.0.0.1:$metrics ${BENCH_PPROF:+--pprof} --log-level warn > "$LOGS/$label.log" 2>&1 &
  NFSD=$!; PIDS+=($NFSD)
  wait_port 127.0.0.1 $nfs && wait_port 127.0.0.1 $pm || return 1
  # pid=: nfsbench reads each server's CPU use from /proc; metrics=: it
  # counts the calls each operation made from rwxnfs's /metrics.
  TARGETS+=(--target "label=$label,export=/volumes/default,portmap-port=$pm,backing=$dir/volumes/default,pid=$NFSD,metrics=127.0.0.1:$metrics")
}

# start_ganesha DIR: rpcbind, rpc.statd and nfs-ganesha (VFS FSAL)
# exporting DIR as /export (NFS 2049, MOUNT 20048, NLM 32803).
start_ganesha() {
  local dir=$1
  say "starting rpcbind, rpc.statd, nfs-ganesha (VFS FSAL; NFS 2049, MOUNT 20048, NLM 32803)"
  mkdir -p "$W/ganesha-state"
  sed "s|@EXPORT@|$dir|g; s|@STATE@|$W/ganesha-state|g" bench/ganesha.conf.in > "$W/ganesha.conf"
  rpcbind -w; sleep 0.2; PIDS+=($(pidof rpcbind))
  rpc.statd --no-notify; sleep 0.3; PIDS+=($(pidof rpc.statd))
  ganesha.nfsd -f "$W/ganesha.conf" -L "$LOGS/ganesha.log" -p /run/ganesha/ganesha.pid -N NIV_EVENT
  local ok=0
  for _ in $(seq 100); do rpcinfo -p 127.0.0.1 2>/dev/null | grep -q nlockmgr && { ok=1; break; }; sleep 0.2; done
  GANESHA=$(cat /run/ganesha/ganesha.pid 2>/dev/null); PIDS+=($GANESHA)
  [ $ok = 1 ] || say "ganesha did not register with rpcbind (see $LOGS/ganesha.log)"
  # Ports from rpcbind, as the Linux mount finds them.
  TARGETS+=(--target "label=ganesha,export=/export,backing=$dir${GANESHA:+,pid=$GANESHA}")
}

# start_gonfs DIR: go-nfs's example/osnfs serving DIR (NFS and MOUNT on
# 2051, no portmapper, no NLM).
start_gonfs() {
  local dir=$1
  say "starting go-nfs example/osnfs (NFS and MOUNT on 2051, no portmapper, no NLM)"
  "$BIN/osnfs" "$dir" 2051 > "$LOGS/osnfs.log" 2>&1 &
  GONFS=$!; PIDS+=($GONFS)
  wait_port 127.0.0.1 2051 || say "go-nfs did not start"
  TARGETS+=(--target "label=go-nfs,export=/,nfs-port=2051,mount-port=2051,no-lock,backing=$dir,pid=$GONFS")
}
