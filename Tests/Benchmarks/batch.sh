#!/usr/bin/env bash
# A batching generic gateway: the release daemon sends N one-part messages through the generic adapter
# configured by Config/carriers/gateway-sim-generic.json5 (100 recipients per JSON request) to `loa gateway-sim`
# (no receipts), store and delivery log on, no rate limit to speak of, in ROUNDS rounds (a fresh campaign each).
# Per round, beside Loa's recipients per second (the delivery log's accepted lines, first to last):
#   - the rows the store wrote per recipient (`loa_store_rows_written_total` before and after the sending; the
#     campaign starts once its ingest is over, so ingest is not counted) and its transactions per recipient;
#   - CPU microseconds per recipient of each daemon thread (/proc/PID/task/*/stat) and of the simulator;
#   - SQLite's floor for that many writes per recipient, run right after Loa's round on a copy of a stored
#     campaign (Tests/Benchmarks/floor.py): the per-recipient writes as bare 100-row UPDATEs, the rest as one-row
#     INSERTs per request, no Loa code. FLOOR_ROWS=w fixes the rows per recipient instead of Loa's measured figure.
#     And the same floor with the outcome's gateway ids (one per row, into the index receipts are found by), which
#     a count of rows does not show: Loa's ratio to each.
# The table quotes medians of the rounds and of the rounds' ratios (the machine's speed drifts within minutes).
#   Tests/Benchmarks/batch.sh [N=300000] [IN_FLIGHT_REQUESTS=8] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-300000}; inflight=${2:-8}; rounds=${3:-3}
Deploy/setup-debian.sh build
source Tests/Benchmarks/lib.sh
bench_init batch
swift build -c release --product loa-bench 2>&1 | grep -E 'error|warning' || true
bench="$(dirname "$loa")/loa-bench"
# LOA_BIN_DIR: another build's loa and loa-bench (a before/after comparison on the same machine minutes apart).
if [ -n "${LOA_BIN_DIR:-}" ]; then loa="$LOA_BIN_DIR/loa"; bench="$LOA_BIN_DIR/loa-bench"; fi
export LOA_SIM_TOKEN=bench-sim-token LOA_SIM_RECEIPT_SECRET=$LOA_SECRET
bench_start_sim --no-receipts  # its token: $LOA_SIM_TOKEN (a secret is never a flag)
carrier=$(python3 - "$sim" "$inflight" <<'PY'
import sys, re
t = open("Config/carriers/gateway-sim-generic.json5").read()
t = t.replace('"sim-generic"', '"k"').replace("http://127.0.0.1:13100", f"http://127.0.0.1:{sys.argv[1]}")
t = re.sub(r'"rate": \d+', '"rate": 1000000', t)
t = re.sub(r'"max_in_flight": \d+', f'"max_in_flight": {sys.argv[2]}', t)
print(t)
PY
)
bench_config_carrier "$carrier" '"contact_policy": {"max_messages": 0},'
bench_start_daemon
# The floor's database: a stored campaign of 100,000 (Loa's own ingest), copied afresh for each floor run.
"$bench" generate "$work/floor.csv" 100000
mkdir -p "$work/floor-db"
"$bench" ingest-loa "$work/floor.csv" "$work/floor-db" >/dev/null
sim_requests() { curl -s "http://127.0.0.1:$sim/sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }
: > "$work/rounds"
for r in $(seq 1 "$rounds"); do
  start=$(bench_start_in "$(bench_lead "$n")")
  bench_campaign "b$r" "$n" "$start"
  bench_submit_timed
  bench_sleep_until "$start" "$(bench_margin)"  # the snapshots take a while on a loaded machine
  q0=$(sim_requests); before=$(bench_snap "$pid" metrics); sbefore=$(bench_snap "$spid")
  bench_before "$start"
  bench_wait_state "b$r" completed 900
  after=$(bench_snap "$pid" metrics); safter=$(bench_snap "$spid"); q1=$(sim_requests)
  read -r count span rate < <(bench_rate accepted "b$r")
  per=$(bench_per "$before" "$after" "$count"); sper=$(bench_per "$sbefore" "$safter" "$count")
  w=${FLOOR_ROWS:-$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["rows"])' "$per")}
  floor=$(python3 Tests/Benchmarks/floor.py "$work/floor-db" "$work" "$w" 100 3)
  echo "{\"round\": $r, \"count\": $count, \"span\": $span, \"requests\": $((q1 - q0)), \"loa\": $per, \"sim\": $sper, \"floor\": $floor}" >> "$work/rounds"
done
python3 - "$work/rounds" "$n" <<'PY'
import json, sys, statistics
med = statistics.median
rows = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    t = r["loa"]["threads"]
    x = {"loa": r["count"] / float(r["span"]), "floor": r["floor"]["recipients_per_s"], "rows": r["loa"].get("rows", 0),
         "tx": r["loa"].get("transactions", 0), "batch": r["count"] / max(1, r["requests"]), "cpu": r["loa"]["all"],
         "store": t.get("loa-store", 0), "dispatch": t.get("loa-dispatch", 0), "curl": t.get("loa-curl", 0),
         "sim": r["sim"]["all"], "cores": r["loa"]["cores"], "model": r["floor"]}
    x["other"] = x["cpu"] - x["store"] - x["dispatch"] - x["curl"]
    x["ratio"] = x["loa"] / x["floor"]
    x["floor_gw"] = r["floor"].get("with_gateway_ids", {}).get("recipients_per_s", float("nan"))
    x["ratio_gw"] = x["loa"] / x["floor_gw"]
    rows.append(x)
cols = [("loa/s", "loa", "{:.0f}"), ("floor/s", "floor", "{:.0f}"), ("loa/floor", "ratio", "{:.2f}"), ("floor+gw/s", "floor_gw", "{:.0f}"),
        ("loa/f+gw", "ratio_gw", "{:.2f}"), ("rows/rcpt", "rows", "{:.3f}"),
        ("tx/rcpt", "tx", "{:.4f}"), ("rcpt/req", "batch", "{:.1f}"), ("cpu us", "cpu", "{:.1f}"), ("store", "store", "{:.1f}"),
        ("dispatch", "dispatch", "{:.1f}"), ("curl", "curl", "{:.1f}"), ("other", "other", "{:.1f}"), ("sim", "sim", "{:.1f}"),
        ("cores", "cores", "{:.2f}")]
print("per round (recipients/s; rows and transactions the store committed per recipient; CPU us per recipient by thread;")
print("cores: the machine's busy CPUs of 2 during Loa's round)")
print(" ".join(f"{c:>9}" for c in ["round"] + [c[0] for c in cols]))
for i, x in enumerate(rows, 1):
    print(" ".join([f"{i:>9}"] + [f.format(x[k]).rjust(9) for _, k, f in cols]))
m = {k: med([x[k] for x in rows]) for _, k, _ in cols}
model = rows[0]["model"]
print()
print(f"{'what (median of ' + str(len(rows)) + ' rounds)':66} {'value':>10}")
print(f"{'loa through the generic adapter, recipients/s':66} {m['loa']:>10.0f}")
print(f"{'recipients per request (the simulator counted the requests)':66} {m['batch']:>10.1f}")
print(f"{'rows the store wrote per recipient':66} {m['rows']:>10.3f}")
print(f"{'  at most 1 + a share of a per-request write (goal): 1 + 1/batch':66} {1 + 1 / m['batch']:>10.3f}")
print(f"{'transactions the store committed per recipient':66} {m['tx']:>10.4f}")
print(f"{'SQLite floor for those writes, recipients/s':66} {m['floor']:>10.0f}")
print(f"{'  ({} bare 100-row UPDATEs + {} one-row INSERTs per 100 recipients)'.format(model['bulk_updates'], model['single_row_writes_per_request']):66}")
print(f"{'ratio loa / floor (median of round ratios; goal >= 0.8)':66} {m['ratio']:>10.2f}")
print(f"{'SQLite floor with the outcome writing each row its gateway id, rcpt/s':66} {m['floor_gw']:>10.0f}")
print(f"{'ratio loa / that floor (median of round ratios)':66} {m['ratio_gw']:>10.2f}")
print(f"{'loa CPU us per recipient, all threads':66} {m['cpu']:>10.1f}")
for k, label in (("store", "loa-store"), ("dispatch", "loa-dispatch"), ("curl", "loa-curl"), ("other", "other loa threads")):
    print(f"{'  ' + label:66} {m[k]:>10.1f}")
print(f"{'gateway simulator CPU us per recipient':66} {m['sim']:>10.1f}")
print(f"{'machine busy during loa rounds, cores of 2':66} {m['cores']:>10.2f}")
print(f"({len(rows)} rounds of {sys.argv[2]} recipients)")
with open(sys.argv[1] + ".summary", "w") as f:
    f.write(f"{m['loa']:.0f} {m['floor']:.0f} {m['ratio']:.2f} {m['rows']:.3f} {1 + 1 / m['batch']:.3f} {m['floor_gw']:.0f} {m['ratio_gw']:.2f}\n")
PY
read -r loa_rate floor_rate ratio rows bound floor_gw ratio_gw < "$work/rounds.summary"
bench_summary "batched sending, recipients/s (batch.sh $n $inflight $rounds)" "$loa_rate" "$floor_rate (SQLite, $rows rows/rcpt)" "$ratio" ">= 0.8"
bench_summary "batched sending against SQLite with the gateway ids' index (batch.sh)" "$loa_rate" "$floor_gw (SQLite, with gateway ids)" "$ratio_gw" "-"
bench_summary "rows written per recipient (batch.sh)" "$rows" "$bound (1 + 1/batch)" "$(python3 -c "print(round($rows / $bound, 2))")" "<= 1.00"
