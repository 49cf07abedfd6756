#!/usr/bin/env bash
# The goals of issue 18 in one table, each figure beside its floor from the same run:
#   - CPU per message on the single-message path against the plain libcurl multi client (cpu.sh; goal <= 1.5x),
#   - batched sending against SQLite's floor for the rows Loa writes per recipient (batch.sh; goal >= 0.8x), and
#     those rows per recipient against one write per recipient plus a share of a per-request write,
#   - peak RSS of the daemon ingesting and sending campaigns of two sizes (rss.sh; goal <= 64 MiB, flat),
#   - the start of a large store after a clean stop and after a SIGKILL while sending (restart.sh; goal <= 1 s).
# Each script prints its own full table first. Benchmarks, not tests: nothing here fails on a figure.
#   Tests/Benchmarks/all.sh [quick|full]
# quick (default, some minutes): cpu.sh 30000, batch.sh 100000, rss.sh 100000 and 1000000, restart.sh 1000000;
# full: cpu.sh 100000, batch.sh 300000, rss.sh 1000000 and 10000000, restart.sh 10000000 (an hour or more).
# Sizes can be set one by one: CPU_N, BATCH_N, RSS_SIZES="1000000 10000000", RESTART_N, ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-quick}
case "$mode" in
  quick) cpu_n=${CPU_N:-30000}; batch_n=${BATCH_N:-100000}; rss_sizes=${RSS_SIZES:-100000 1000000}; restart_n=${RESTART_N:-1000000} ;;
  full) cpu_n=${CPU_N:-100000}; batch_n=${BATCH_N:-300000}; rss_sizes=${RSS_SIZES:-1000000 10000000}; restart_n=${RESTART_N:-10000000} ;;
  *) echo "usage: Tests/Benchmarks/all.sh [quick|full]" >&2; exit 2 ;;
esac
rounds=${ROUNDS:-3}
summary=$(mktemp /tmp/loa-bench-all.XXXXXX)
trap 'rm -f "$summary"' EXIT
export BENCH_SUMMARY=$summary
load() { awk '{print $1, $2, $3}' /proc/loadavg; }
echo "machine: $(nproc) cores; load average at the start: $(load)"
started=$SECONDS
run() { echo; echo "== $*"; local t=$SECONDS; "$@" || echo "(FAILED: $*)"; echo "(took $((SECONDS - t)) s; load average now: $(load))"; }
run env CPU_CONTENTION=0 bash Tests/Benchmarks/cpu.sh "$cpu_n" 64 "$rounds"
run bash Tests/Benchmarks/batch.sh "$batch_n" 8 "$rounds"
for n in $rss_sizes; do run bash Tests/Benchmarks/rss.sh "$n"; done
run bash Tests/Benchmarks/restart.sh "$restart_n" "$rounds"
echo
echo "== issue 18's goals ($mode; medians of $rounds rounds where a script runs rounds; $(nproc) cores, load average at the end $(load); $((SECONDS - started)) s)"
python3 - "$summary" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
rss = [(r[0], float(r[1])) for r in rows if r[0].startswith("peak RSS")]
if len(rss) >= 2:
    rows.append([f"peak RSS growth, largest size / smallest", f"{rss[-1][1]:.0f}", f"{rss[0][1]:.0f}", f"{rss[-1][1] / rss[0][1]:.2f}", "flat (~1.0)"])
w = [max(len(r[i]) for r in rows + [["what", "loa", "floor", "ratio", "goal"]]) for i in range(5)]
for r in [["what", "loa", "floor (same run)", "ratio", "goal"]] + rows:
    print(f"{r[0]:<{w[0]}}  {r[1]:>10}  {r[2]:<{max(w[2], 16)}}  {r[3]:>6}  {r[4]}")
PY
