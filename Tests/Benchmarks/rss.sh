#!/usr/bin/env bash
# Peak memory of a large campaign: the release daemon ingests and sends an N-recipient campaign (default 1M)
# to `loa gateway-sim` (Kannel's shape over POST, receipts on), and the script samples the daemon's resident
# memory every 0.5 s; the peak is the kernel's VmHWM at the end. Also prints the ingest and sending times.
#   Tests/Benchmarks/rss.sh [N=1000000]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000000}
Deploy/setup-debian.sh build
source Tests/Benchmarks/lib.sh
bench_init rss
bench_start_sim --receipt-delay-ms 0 --drain-seconds 0
bench_config "http://127.0.0.1:$sim/cgi-bin/sendsms" 100000 messages 64 '"contact_policy": {"max_messages": 0},' POST
bench_campaign big "$n" 2026-01-01T00:00:00+07:00
bench_start_daemon
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
echo "idle RSS: $(( $(rss) / 1024 )) MiB"
start=$(date +%s.%N)
"$loa" campaign submit "$work/c.json" --config "$work/loa.json" >/dev/null
submitted=$(date +%s.%N)
peak=0
end=$((SECONDS + 1800))
while [ $SECONDS -lt $end ]; do
  r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
  s=$("$loa" campaign show big --json --config "$work/loa.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$s" = completed ] && break
  sleep 0.5
done
done_at=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
read -r count span rate < <(bench_rate accepted)
printf '%-44s %12s\n' "what" "value"
printf '%-44s %12s\n' "recipients" "$n"
printf '%-44s %12s\n' "submit (stream, normalize, store) s" "$(python3 -c "print(round($submitted - $start, 1))")"
printf '%-44s %12s\n' "sending s / messages per s" "$span / $rate"
printf '%-44s %12s\n' "sampled peak RSS MiB" "$((peak / 1024))"
printf '%-44s %12s\n' "kernel peak RSS (VmHWM) MiB" "$((hwm / 1024))"
printf '%-44s %12s\n' "store size MiB" "$(( $(stat -c %s "$work/data/loa.db") / 1048576 ))"
echo "(total $(python3 -c "print(round($done_at - $start, 1))") s; $count accepted)"
bench_summary "peak RSS MiB (VmHWM), $n recipients ingested and sent (rss.sh $n)" "$((hwm / 1024))" "-" "-" "<= 64, flat"
