#!/usr/bin/env bash
# A batching generic gateway: the release daemon sends N one-part messages through the generic adapter
# configured by Config/carriers/gateway-sim-generic.json5 (100 recipients per JSON request) to `loa gateway-sim`
# (no receipts), store and delivery log on, no rate limit to speak of. Prints recipients per second, from the
# delivery log's accepted lines, and the requests the simulator answered. Then, in the same run, the ceiling
# any store with a durable state per recipient has here: SQLite's own rate for the two writes at-most-once needs
# per recipient (claim before the request, outcome after), bare UPDATEs of 100 rows per statement on one
# connection, no Loa code and no COMMIT counted (Tests/Benchmarks/store-path.sh, 100,000 recipients).
#   Tests/Benchmarks/batch.sh [N=300000] [IN_FLIGHT_REQUESTS=8]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-300000}; inflight=${2:-8}
Deploy/setup-debian.sh build
source Tests/Benchmarks/lib.sh
bench_init batch
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
bench_campaign bench "$n" 2026-01-01T00:00:00+07:00
bench_start_daemon
bench_submit_and_wait bench 900
read -r count span rate < <(bench_rate accepted)
requests=$(curl -s "http://127.0.0.1:$sim/sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
printf '%-58s %10s\n' "what" "value"
printf '%-58s %10s\n' "recipients/s through the generic adapter (100 per request)" "$rate"
printf '%-58s %10s\n' "requests the simulator answered" "$requests"
printf '%-58s %10s\n' "recipients per request" "$(python3 -c "print(round($count / max(1, $requests), 1))")"
floor=$(bash Tests/Benchmarks/store-path.sh 100000 800 | awk '/100 rows per statement/ {print $NF}')
printf '%-58s %10s\n' "SQLite's floor: 2 bare UPDATEs per recipient, 100 per stmt" "$floor"
printf '%-58s %10s\n' "loa / that floor" "$(python3 -c "print(round($rate / $floor, 2))")"
echo "($count of $n recipients accepted in $span s)"
