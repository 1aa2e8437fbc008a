#!/bin/bash
# nfsbench --hook for profile.sh: `profile-hook.sh start|end SERVER NAME`
# attaches a profiler to SERVER for one measured phase and detaches it
# after. PROFILE_PASS says which (perf, allocs or strace), PROFILE_DIR where the
# files go, PID_<server> (dashes as underscores) which process.
set -u
EV=$1; SERVER=$2; NAME=$3
var=PID_${SERVER//-/_}; PID=${!var:-}
[ -n "$PID" ] || exit 0
D=$PROFILE_DIR/$PROFILE_PASS; mkdir -p "$D"; F=$D/$SERVER-$NAME
PPROF=http://127.0.0.1:9102/debug/pprof

# stop PIDFILE: SIGINT makes perf and strace write what they have.
stop() {
  local p; p=$(cat "$1" 2>/dev/null) || return 0
  kill -INT "$p" 2>/dev/null
  for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  rm -f "$1"
}

case $PROFILE_PASS:$EV in
perf:start)
  # CPU samples of every thread, kernel and user, with call chains (Go
  # keeps frame pointers).
  perf record -q -e cpu-clock -F 1999 -g -p "$PID" -o "$F.perf.data" > "$F.perf.log" 2>&1 &
  echo $! > "$F.perf.pid"
  sleep 1 ;;
perf:end)
  stop "$F.perf.pid" ;;
allocs:start|allocs:end)
  # rwxnfs's allocations so far (profile.sh runs it with every allocation
  # recorded): the heap profile holds them, and gc=1 (heap only, not
  # allocs) runs a GC first, which is what brings the counts up to date.
  [ "$SERVER" = rwxnfs ] || exit 0
  n=0; [ "$EV" = end ] && n=1
  curl -sf -o "$F.allocs.$n" "$PPROF/heap?gc=1"
  [ "$EV" = end ] && curl -sf -o "$F.goroutines" "$PPROF/goroutine?debug=1" ;;
strace:start)
  # System calls of every thread: how many and the wall time in each.
  strace -f -c -w -o "$F.strace" -p "$PID" 2> "$F.strace.log" &
  echo $! > "$F.strace.pid"
  sleep 2 ;;
strace:end)
  stop "$F.strace.pid" ;;
esac
exit 0
