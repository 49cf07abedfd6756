#!/usr/bin/env bash
# Recipients per second with the PostgreSQL store beside the SQLite store, for the same campaign (issue 21's first
# figure). Two release daemons, one per store, each with the batching generic carrier of
# Config/carriers/gateway-sim-generic.json5 (100 recipients per request, IN_FLIGHT requests) against one
# `loa gateway-sim` (no receipts); a PostgreSQL 15 of the script's own (Tests/pg.sh, fsync on unless LOA_PG_FSYNC=off: durable commits, as
# the daemon needs them). Each round sends a fresh campaign of N one-part recipients through SQLite, then through
# PostgreSQL; Loa's rate is the delivery log's accepted lines, first to last; with the rows each store wrote per
# recipient (/metrics). Medians of the rounds and of the rounds' ratios; `uptime` before and after.
# CLUSTER_LOG: `on` (the default config: every line also into the cluster's log, `store.cluster_log`), `off`, or `both`:
# a third daemon on PostgreSQL with it off (a schema of its own), in the same rounds, for the cost of the cluster's log.
#   Tests/Benchmarks/postgres.sh [N=50000] [IN_FLIGHT=8] [ROUNDS=3] [CLUSTER_LOG=on|off|both]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-50000}; inflight=${2:-8}; rounds=${3:-3}; clog=${4:-on}
case "$clog" in on|off|both) ;; *) echo "postgres.sh: CLUSTER_LOG must be on, off or both, not '$clog'" >&2; exit 2 ;; esac
Deploy/setup-debian.sh test
source Tests/Benchmarks/lib.sh
bench_init pg
base=$work
# Outside $base: the server's user (not root) must be able to reach it, and mktemp's directories are 0700.
pgdir=$(mktemp -u "${TMPDIR:-/tmp}/loa-pg.XXXXXX")
sqlite_pid=""; pg_pid=""; pgoff_pid=""
cleanup_all() {
  [ -n "$sqlite_pid" ] && kill -TERM "$sqlite_pid" 2>/dev/null && wait "$sqlite_pid" 2>/dev/null
  [ -n "$pg_pid" ] && kill -TERM "$pg_pid" 2>/dev/null && wait "$pg_pid" 2>/dev/null
  [ -n "$pgoff_pid" ] && kill -TERM "$pgoff_pid" 2>/dev/null && wait "$pgoff_pid" 2>/dev/null
  Tests/pg.sh stop "$pgdir" 2>/dev/null || true
  pid=""; work=$base; bench_cleanup
}
trap cleanup_all EXIT
LOA_PG_FSYNC=${LOA_PG_FSYNC:-on} Tests/pg.sh start "$pgdir"
pg_url=$(Tests/pg.sh url "$pgdir")
export LOA_SIM_TOKEN=bench-sim-token LOA_SIM_RECEIPT_SECRET=$LOA_SECRET
bench_start_sim --no-receipts
carrier=$(python3 - "$sim" "$inflight" <<'PY'
import sys, re
t = open("Config/carriers/gateway-sim-generic.json5").read()
t = t.replace('"sim-generic"', '"k"').replace("http://127.0.0.1:13100", f"http://127.0.0.1:{sys.argv[1]}")
t = re.sub(r'"rate": \d+', '"rate": 1000000', t)
t = re.sub(r'"max_in_flight": \d+', f'"max_in_flight": {sys.argv[2]}', t)
print(t)
PY
)
# One daemon per store, each in a work directory of its own.
declare -A ports pids
stores="sqlite pg"; [ "$clog" = both ] && stores+=" pgoff"
for store in $stores; do
  work="$base/$store"; mkdir -p "$work"; port=$(free_port); ports[$store]=$port
  extra='"contact_policy": {"max_messages": 0},'
  on=true; [ "$clog" = off ] || [ "$store" = pgoff ] && on=false
  [ "$store" != sqlite ] && extra+=" \"store\": {\"kind\": \"postgresql\", \"url\": \"$pg_url\", \"password\": {\"file\": \"$pgdir/password\"}, \"schema\": \"bench_$store\", \"cluster_log\": $on},"
  bench_config_carrier "$carrier" "$extra"
  bench_start_daemon
  pids[$store]=$pid
done
sqlite_pid=${pids[sqlite]}; pg_pid=${pids[pg]}; pgoff_pid=${pids[pgoff]:-}; pid=""
rows_written() { curl -fsS -H "Authorization: Bearer $LOA_API_TOKEN" "http://127.0.0.1:$port/metrics" | awk '/^loa_store_rows_written_total/ {print $2}'; }
echo "before: $(uptime)"
: > "$base/rounds"
for r in $(seq 1 "$rounds"); do
  for store in $stores; do
    work="$base/$store"; port=${ports[$store]}
    bench_campaign "b$r" "$n" "$(bench_start_in 1)"
    "$loa" campaign submit "$work/c.json" --config "$work/loa.json" >/dev/null
    w0=$(rows_written)
    bench_wait_state "b$r" completed 900
    w1=$(rows_written)
    read -r count span rate < <(bench_rate accepted "b$r")
    echo "{\"round\": $r, \"store\": \"$store\", \"count\": $count, \"span\": $span, \"rate\": $rate, \"rows\": $(( ${w1%.*} - ${w0%.*} ))}" >> "$base/rounds"
    echo "round $r $store: $count recipients in $span s = $rate recipients/s" >&2
  done
done
echo "after: $(uptime)"
python3 - "$base/rounds" "$n" "$clog" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {s: [r for r in rows if r["store"] == s] for s in ("sqlite", "pg", "pgoff")}
clog = sys.argv[3]
ratios = [p["rate"] / q["rate"] for p, q in zip(by["pg"], by["sqlite"])]
print(f"N={sys.argv[2]}, {len(by['pg'])} rounds (medians)")
print("| store | recipients/s | rows written per recipient (from submit to completion) |")
print("|---|---|---|")
for s, name in (("sqlite", "SQLite"), ("pg", f"PostgreSQL 15, cluster log {'off' if clog == 'off' else 'on'}"), ("pgoff", "PostgreSQL 15, cluster log off")):
    rs = by[s]
    if not rs: continue
    print(f"| {name} | {statistics.median(r['rate'] for r in rs):.0f} | {statistics.median(r['rows'] / r['count'] for r in rs):.2f} |")
print(f"PostgreSQL / SQLite, median of the rounds' ratios: {statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})")
if by["pgoff"]:
    on_off = [p["rate"] / q["rate"] for p, q in zip(by["pg"], by["pgoff"])]
    print(f"cluster log on / off, median of the rounds' ratios: {statistics.median(on_off):.2f} ({', '.join(f'{x:.2f}' for x in on_off)})")
PY
