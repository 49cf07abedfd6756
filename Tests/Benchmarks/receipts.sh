#!/usr/bin/env bash
# Receipt intake benchmark: the real daemon (release build) on 127.0.0.1, a campaign of N recipients that
# has not started (so nothing is sent), and wrk firing Kannel-style delivery receipts at /dlr/<carrier>
# for random message ids: the first receipt of a message moves it to delivered, repeats are no-ops, and
# every one waits for its group-committed transaction before the answer. Baseline in the same run: wrk
# against /healthz on the same server (the HTTP ceiling). Three runs each, medians.
#   Tests/Benchmarks/receipts.sh [N=100000] [SECONDS=8] [CONNECTIONS=64]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-100000}; secs=${2:-8}; conns=${3:-64}
Deploy/setup-debian.sh build
source Tests/Benchmarks/lib.sh
bench_need wrk wrk
bench_init receipts
bench_config http://127.0.0.1:9/cgi-bin/sendsms 1000 messages 32
bench_campaign bench "$n" 2099-01-01T00:00:00+07:00   # not started: receipts only
bench_start_daemon
"$loa" campaign submit "$work/c.json" --config "$work/loa.json" >/dev/null
cat > "$work/dlr.lua" <<LUA
math.randomseed(42)
request = function()
  return wrk.format("GET", "/dlr/k?k=$LOA_SECRET&st=1&ts=0&fc=&ans=&id=" .. math.random(1, $n))
end
LUA
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { wrk -t2 -c"$conns" -d"${secs}s" "$@" 2>/dev/null | awk '/Requests\/sec/ {printf "%d", $2}'; }
base=(); dlr=()
for i in 1 2 3; do
  base+=("$(run "http://127.0.0.1:$port/healthz")")
  dlr+=("$(run -s "$work/dlr.lua" "http://127.0.0.1:$port")")
done
b=$(median "${base[@]}"); d=$(median "${dlr[@]}")
delivered=$("$loa" campaign show bench --json --config "$work/loa.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["states"].get("delivered",0))')
printf '%-34s %12s\n' "what (wrk -t2 -c$conns, ${secs}s)" "req/s"
printf '%-34s %12s\n' "GET /healthz (HTTP ceiling)" "$b"
printf '%-34s %12s\n' "receipts /dlr/k (stored, answered)" "$d"
awk -v a="$d" -v b="$b" 'BEGIN {printf "%-34s %12.2f\n", "ratio receipts / ceiling", a/b}'
echo "messages moved to delivered by the runs: $delivered of $n (medians of 3 runs each)"
