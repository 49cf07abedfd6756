#!/usr/bin/env bash
# Ingest benchmark: a segment of N rows (default 1,000,000) read, normalized, deduplicated, rendered and
# stored by Loa's own path, next to a raw prepared INSERT of the same rows (split on the first comma, no
# normalization) into the same table with its indexes (raw) and into a table without indexes (bare), in
# the same run. Three runs each, medians printed, plus each phase's peak RSS. Optional extra sizes for the
# memory curve: Tests/Benchmarks/ingest.sh 1000000 10000000
set -euo pipefail
cd "$(dirname "$0")/../.."
Deploy/setup-debian.sh build
swift build -c release --product loa-bench 2>&1 | grep -E 'error|warning' || true
bin="$(swift build -c release --show-bin-path)/loa-bench"
work=$(mktemp -d /tmp/loa-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
sizes=("${@:-1000000}")
printf '%-10s %-6s %12s %12s %10s %14s\n' rows path "rows/s" "seconds" "ratio" "peak RSS MiB"
for n in "${sizes[@]}"; do
  csv=$work/segment-$n.csv
  "$bin" generate "$csv" "$n"
  runs=3; [ "$n" -gt 2000000 ] && runs=1
  declare -A rate=() secs=() rss=()
  for phase in bare raw loa; do
    vals=(); svals=(); rvals=()
    for i in $(seq 1 $runs); do
      rm -rf "$work/db"; mkdir -p "$work/db"
      line=$("$bin" ingest-$phase "$csv" "$work/db")
      vals+=("$(sed -E 's/.*rows_per_s=([0-9]+).*/\1/' <<<"$line")")
      svals+=("$(sed -E 's/.*seconds=([0-9.]+).*/\1/' <<<"$line")")
      rvals+=("$(sed -E 's/.*peak_rss_kib=([0-9]+).*/\1/' <<<"$line")")
    done
    median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    rate[$phase]=$(median "${vals[@]}"); secs[$phase]=$(median "${svals[@]}"); rss[$phase]=$(median "${rvals[@]}")
  done
  ratio=$(awk -v a="${rate[loa]}" -v b="${rate[raw]}" 'BEGIN {printf "%.2f", a/b}')
  bratio=$(awk -v a="${rate[bare]}" -v b="${rate[raw]}" 'BEGIN {printf "%.2f", a/b}')
  printf '%-10s %-6s %12s %12s %10s %14s\n' "$n" bare "${rate[bare]}" "${secs[bare]}" "$bratio" "$(( ${rss[bare]} / 1024 ))"
  printf '%-10s %-6s %12s %12s %10s %14s\n' "$n" raw "${rate[raw]}" "${secs[raw]}" "1.00" "$(( ${rss[raw]} / 1024 ))"
  printf '%-10s %-6s %12s %12s %10s %14s\n' "$n" loa "${rate[loa]}" "${secs[loa]}" "$ratio" "$(( ${rss[loa]} / 1024 ))"
  rm -f "$csv"
done
echo "(medians of 3 runs; 1 run above 2M rows. ratio = rate / raw rate, same file, same run)"
