#!/bin/bash
# A/B of two nfsd variants side by side, interleaved, so that the
# difference is measured minutes apart at most on a shared machine. Runs
# inside the namespace made by netns.sh (`make bench-ab` does both):
#   ab.sh OUTDIR
# Environment: AB_A_BIN, AB_B_BIN (default build/nfsd), AB_A_ENV, AB_B_ENV
# (e.g. AB_B_ENV=GOMAXPROCS=1), AB_ARGS (nfsbench run flags; default the
# one-call workloads, 2,000 files, 5 rounds).
# Results: OUTDIR/results.jsonl (servers "a" and "b") and, on stdout, the
# median over the rounds of b ÷ a per workload, with the lowest and highest.
set -uo pipefail
OUT=$(realpath -m "$1"); BIN=$(realpath build)
W=$OUT/work; LOGS=$OUT/logs
rm -rf "$OUT"; mkdir -p "$W"/{a,b} "$LOGS"
source bench/servers.sh
trap 'stop_servers; rm -rf "$W"' EXIT
NFSD_BIN=${AB_A_BIN:-} NFSD_ENV=${AB_A_ENV:-} start_rwxnfs "$W/a" a 0 || exit 1
NFSD_BIN=${AB_B_BIN:-} NFSD_ENV=${AB_B_ENV:-} start_rwxnfs "$W/b" b 10 || exit 1
{ echo "a: ${AB_A_BIN:-build/nfsd} ${AB_A_ENV:-}"; echo "b: ${AB_B_BIN:-build/nfsd} ${AB_B_ENV:-}"; } > "$OUT/setup.txt"
"$BIN/nfsbench" run "${TARGETS[@]}" ${AB_ARGS:---workloads one-meta,one-readdir --one-files 2000 --duration 4s --rounds 5} \
  --json "$OUT/results.jsonl" 2> "$OUT/nfsbench.log" || { tail "$OUT/nfsbench.log"; exit 1; }
cat "$OUT/setup.txt"
echo "b ÷ a (throughput), median of the rounds (lowest–highest); p50 µs a / b"
jq -rs '
  map(select(.error == null and .na == null and .ops > 0))
  | group_by([.workload, .mode // "", .client // ""])[]
  | . as $g
  | [ $g[] | select(.server == "a") ] as $a
  | [ $g[] | select(.server == "b") ] as $b
  | [ $a[] as $x | $b[] | select(.round == $x.round) | .ops_per_s / $x.ops_per_s ] | sort as $r
  | select($r | length > 0)
  | def med(v): (v | sort) as $s | if ($s|length) % 2 == 1 then $s[($s|length)/2|floor] else ($s[($s|length)/2-1] + $s[($s|length)/2]) / 2 end;
    "\(($g[0].mode // "many") + ":" + $g[0].workload)\t\(med($r) * 100 | round / 100) (\($r[0] * 100 | round / 100)–\($r[-1] * 100 | round / 100))\tp50 \(med([$a[].p50_us]) | round) / \(med([$b[].p50_us]) | round)"
' "$OUT/results.jsonl" | column -t -s $'\t'
