#!/bin/bash
# Sums up profile.sh's output per operation, as markdown:
#   profile-summary.sh OUTDIR > summary.md
# For each measured phase and server: system calls per operation (strace
# pass), CPU per operation split by where it went (perf pass: the kernel's
# system-call entry points, the same for every server, and Go runtime
# functions for rwxnfs) and rwxnfs's heap allocations per operation.
set -uo pipefail
OUT=$1
NFSD=build/nfsd
cat "$OUT/setup.txt" 2>/dev/null | sed 's/^/    /'

# name RESULT-JSON: the phase's file name, as profile-hook.sh got it.
phases() { # pass
  jq -r 'select(.error == null and .na == null and .ops > 0) |
    [.server, (if .client then .client + "-" elif .mode then .mode + "-" else "" end) + .workload,
     .ops, .p50_us, (.server_cpu_s // 0), (.client_cpu_s // 0)] | @tsv' "$OUT/$1/results.jsonl"
}

# perfpct FILE: "symbol<TAB>children%" for every symbol, and "TOTAL<TAB>ns".
perfpct() {
  perf report -i "$1" --children --sort sym --stdio -g none 2>/dev/null | awk '
    /^# Event count/ { print "TOTAL\t" $NF }
    /^ +[0-9.]+%/ { c = $1; sub("%", "", c); s = $2; sub("%", "", s)
      sym = $0; sub(/^ *[0-9.]+% +[0-9.]+% +\[[.k]\] /, "", sym); print sym "\t" c "\t" s }'
}

# Categories of CPU time: a label, then the symbols whose inclusive time
# it is: each system call's outermost kernel function that perf shows
# (open_by_handle_at's is do_handle_open; never both a wrapper and what it
# calls). Different system calls never nest, so summing them is safe.
CATS=(
  "network receive|ksys_read __sys_recvfrom __sys_recvmsg"
  "network send|ksys_write __sys_sendmsg do_writev"
  "wait and wake (futex, epoll, sleep)|__x64_sys_futex __x64_sys_epoll_pwait __x64_sys_epoll_wait __x64_sys_epoll_ctl __x64_sys_nanosleep __x64_sys_sched_yield"
  "fsync, fdatasync|__x64_sys_fsync __x64_sys_fdatasync"
  "other file-system calls|__do_sys_newfstatat __do_sys_newfstat __x64_sys_name_to_handle_at do_handle_open __x64_sys_openat __x64_sys_pwritev __x64_sys_pwritev2 __sys_setresuid __sys_setresgid __x64_sys_getdents64 __x64_sys_close __x64_sys_renameat __x64_sys_renameat2 __x64_sys_unlinkat __x64_sys_mkdirat __x64_sys_fchmodat __x64_sys_fchmod __x64_sys_pwrite64 __x64_sys_pread64 __x64_sys_utimensat __x64_sys_fchownat __do_sys_setgroups __x64_sys_setfsuid __x64_sys_setfsgid __x64_sys_statfs __x64_sys_fstatfs __x64_sys_lseek __x64_sys_fgetxattr __x64_sys_getxattr __x64_sys_fsetxattr __x64_sys_readlinkat"
  "Go: sysmon|runtime.sysmon"
  "Go: scheduler (findRunnable)|runtime.findRunnable"
  "Go: stack growth|runtime.newstack"
  "Go: malloc|runtime.mallocgc"
  "Go: GC|runtime.gcBgMarkWorker"
)

echo
echo "### System calls per operation (strace -f -c -w)"
echo
echo "| server | phase | calls/op | by call (calls per op; errors) | fsync wall µs/op |"
echo "|---|---|---|---|---|"
phases strace | while IFS=$'\t' read -r server name ops p50 cpu ccpu; do
  f=$OUT/strace/$server-$name.strace
  [ -f "$f" ] || continue
  awk -v ops="$ops" -v server="$server" -v name="$name" '
    $NF == "total" { total = $(NF-2) }
    /^ *[0-9.]+ +[0-9.]+ +[0-9]+ +[0-9]+/ {
      sc = $NF; calls = $4; errs = (NF == 6) ? $5 : 0
      if (sc == "restart_syscall" || sc == "total") next
      per = calls / ops; if (per < 0.05) next
      e = (errs / ops >= 0.05) ? sprintf("; %.2g err", errs / ops) : ""
      list = list sprintf("%s%s %.2g%s", (list == "" ? "" : ", "), sc, per, e)
      if (sc == "fsync" || sc == "fdatasync") fs += $2
    }
    END { printf "| %s | %s | %.1f | %s | %.0f |\n", server, name, total / ops, list, fs * 1e6 / ops }' "$f"
done

echo
echo "### Server CPU per operation, by where it went (perf record -g, cpu-clock)"
echo
echo "µs of CPU per operation inside each group of calls (inclusive); *user* is the server's own code outside system calls. The Go rows overlap the system-call groups (sysmon sleeps in nanosleep, the scheduler waits in futex and epoll); the system-call groups do not overlap each other. *nfsbench CPU* is the load generator's own (it shares the CPUs)."
echo
hdr="| server | phase | p50 µs | nfsbench CPU µs/op | CPU µs/op (/proc) | CPU µs/op (perf) | user |"; sep="|---|---|---|---|---|---|---|"
for c in "${CATS[@]}"; do hdr="$hdr ${c%%|*} |"; sep="$sep---|"; done
echo "$hdr"; echo "$sep"
phases perf | while IFS=$'\t' read -r server name ops p50 cpu ccpu; do
  f=$OUT/perf/$server-$name.perf.data
  [ -f "$f" ] || continue
  perfpct "$f" > "$f.pct"
  total=$(awk -F'\t' '$1 == "TOTAL" { print $2 }' "$f.pct")
  [ -n "$total" ] || continue
  # User-space share: self time of user-space ([.]) symbols.
  user=$(perf report -i "$f" --no-children --sort sym --stdio -g none 2>/dev/null |
    awk '/^ +[0-9.]+%/ && $2 == "[.]" { s += $1 } END { print s + 0 }')
  row="| $server | $name | $(printf %.0f "$p50") | $(awk -v c="$ccpu" -v o="$ops" 'BEGIN { if (c > 0) printf "%.1f", c * 1e6 / o; else printf "—" }') | $(awk -v c="$cpu" -v o="$ops" 'BEGIN { printf "%.1f", c * 1e6 / o }') | $(awk -v t="$total" -v o="$ops" 'BEGIN { printf "%.1f", t / o / 1000 }') | $(awk -v p="$user" -v t="$total" -v o="$ops" 'BEGIN { printf "%.1f", p / 100 * t / o / 1000 }') |"
  for c in "${CATS[@]}"; do
    v=$(awk -F'\t' -v syms=" ${c#*|} " -v t="$total" -v o="$ops" '
      index(syms, " " $1 " ") { p += $2 } END { printf "%.1f", p / 100 * t / o / 1000 }' "$f.pct")
    [ "$v" = 0.0 ] && v="·"
    row="$row $v |"
  done
  echo "$row"
done

echo
echo "### rwxnfs heap allocations per operation (pprof heap profile, every allocation recorded)"
echo
echo "| phase | objects/op | bytes/op | most objects from (objects/op) |"
echo "|---|---|---|---|"
# Allocations made by taking the profiles and serving /metrics are not
# the operations'.
IGNORE='runtime/pprof|net/http|prometheus|compress/flate'
# total FILE INDEX: the profile's total of a sample index, filters applied
# (pprof's "of N total" ignores them; the nodes shown, with none dropped,
# add up to the filtered total).
total() {
  go tool pprof -ignore="$IGNORE" -sample_index="$2" -unit=B -top -nodecount=1000000 -nodefraction=0 "$NFSD" "$1" 2>/dev/null |
    sed -n 's/^Showing nodes accounting for \([0-9.]*\)B*,.*/\1/p'
}
[ -d "$OUT/allocs" ] && phases allocs | while IFS=$'\t' read -r server name ops p50 cpu ccpu; do
  a0=$OUT/allocs/$server-$name.allocs.0; a1=$OUT/allocs/$server-$name.allocs.1
  [ -f "$a0" ] && [ -f "$a1" ] || continue
  per() { awk -v a="$1" -v b="$2" -v o="$ops" 'BEGIN { printf "%.1f", (b - a) / o }'; }
  objs=$(per "$(total "$a0" alloc_objects)" "$(total "$a1" alloc_objects)")
  bytes=$(per "$(total "$a0" alloc_space)" "$(total "$a1" alloc_space)")
  top=$(go tool pprof -ignore="$IGNORE" -sample_index=alloc_objects -top -nodecount=5 -diff_base "$a0" "$NFSD" "$a1" 2>/dev/null |
    awk -v o="$ops" '/flat%/ { on = 1; next } on && NF >= 6 && $1 > 0 { f = ($NF == "(inline)") ? $(NF-1) : $NF; sub(/.*\//, "", f); printf "%s%s %.1f", (k++ ? ", " : ""), f, $1 / o }')
  echo "| $server $name | $objs | $bytes | $top |"
done

if [ -f "$OUT/sync-probe.jsonl" ]; then
  echo
  echo "### What a durable create costs on this filesystem (nfsbench sync-probe)"
  echo
  echo "Median of the rounds (lowest–highest)."
  echo
  echo "| case | what follows each create | ops/s | p50 µs | p99 µs |"
  echo "|---|---|---|---|---|"
  jq -rs '
    def med: sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
    def spread(f): [.[] | f] as $v | "\($v | med | floor) (\($v | min | floor)–\($v | max | floor))";
    group_by([.mode // "", .workload]) | sort_by(.[0].mode != "one") | .[]
    | [(if .[0].mode == "one" then "one at a time: " else "16 at once: " end) + .[0].workload,
       (.[0].note | sub(", one at a time"; "")),
       spread(.ops_per_s), spread(.p50_us), spread(.p99_us)] | "| " + join(" | ") + " |"' "$OUT/sync-probe.jsonl"
fi
