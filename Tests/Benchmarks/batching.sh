#!/usr/bin/env bash
# Batching against a request-limited gateway: `loa gateway-sim --max-rate 2` takes 2 requests a second and answers
# the rest 429 with the time of its next free request (`--limit-header`); the release daemon sends N one-part
# messages through the generic adapter (Config/carriers/gateway-sim-generic.json5, batch.max 100, message rate
# 1000/s), once with the limit stated (`requests_per_second: 2`) and once left to the adaptive limiter. Prints,
# per case, the median of 3 rounds (fresh daemon and simulator each): recipients/s (accepted lines of the delivery
# log, first to last), accepted requests/s, mean recipients per accepted request, and throttled answers, next to
# what the limit allows (2 × 100 = 200 recipients/s).
#   Tests/Benchmarks/batching.sh [N=3000] [LIMIT_HEADER=x-rate-limit-reset]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-3000}; header=${2:-x-rate-limit-reset}
Deploy/setup-debian.sh build
source Tests/Benchmarks/lib.sh
bench_init batching
export LOA_SIM_TOKEN=bench-sim-token LOA_SIM_RECEIPT_SECRET=$LOA_SECRET

# round RPS: one run (in this shell, so the cleanup trap knows its pids); writes "recipients/s requests/s
# mean-batch throttled" to $work/round.txt.
round() {
  rm -f "$work/sim.port"
  bench_start_sim --no-receipts --max-rate 2 --limit-header "$header"
  carrier=$(python3 - "$sim" "$1" <<'PY'
import sys, re
t = open("Config/carriers/gateway-sim-generic.json5").read()
t = t.replace('"sim-generic"', '"k"').replace("http://127.0.0.1:13100", f"http://127.0.0.1:{sys.argv[1]}")
rps = "" if sys.argv[2] == "none" else f' "requests_per_second": {sys.argv[2]},'
t = re.sub(r'"rate": \d+,', '"rate": 1000,' + rps, t)
print(t)
PY
)
  rm -rf "$work/data"
  bench_config_carrier "$carrier" '"contact_policy": {"max_messages": 0},'
  bench_campaign "b$RANDOM" "$n" 2026-01-01T00:00:00+07:00
  cid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/c.json")
  bench_start_daemon
  bench_submit_and_wait "$cid" 600
  read -r count span rate < <(bench_rate accepted)
  curl -s "http://127.0.0.1:$sim/sim/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin); span = float(sys.argv[1]); count = int(sys.argv[2])
ok = s["requests"] - s["throttled"]; accepted = s["accepted"]; throttled = s["throttled"]
print(f"{count / span:.1f} {ok / span:.2f} {accepted / max(1, ok):.1f} {throttled}")' "$span" "$count" > "$work/round.txt"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  kill -TERM "$spid"; wait "$spid" 2>/dev/null || true; spid=""
}

median() { python3 -c 'import sys, statistics; v = [float(x) for x in sys.argv[1:]]; print(statistics.median(v))' "$@"; }

printf '%-34s %12s %12s %12s %10s\n' "case (limit allows 200/s)" "recipients/s" "requests/s" "mean batch" "throttled"
for rps in 2 none; do
  r=(); q=(); b=(); t=()
  for _ in 1 2 3; do
    round "$rps"
    read -r a1 a2 a3 a4 < "$work/round.txt"
    r+=("$a1"); q+=("$a2"); b+=("$a3"); t+=("$a4")
  done
  label="requests_per_second: 2"; [ "$rps" = none ] && label="no stated limit (adaptive)"
  printf '%-34s %12s %12s %12s %10s\n' "$label" "$(median "${r[@]}")" "$(median "${q[@]}")" "$(median "${b[@]}")" "$(median "${t[@]}")"
  echo "  rounds: recipients/s ${r[*]}; requests/s ${q[*]}; mean batch ${b[*]}; throttled ${t[*]}"
done
echo "($n recipients per round, 3 rounds per case, 429 answers carry $header)"
