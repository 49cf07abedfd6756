#!/usr/bin/env bash
# Peak memory of a large campaign: the release daemon ingests and sends an N-recipient campaign (default 1M)
# to `loa gateway-sim` (Kannel's shape over POST, receipts on), and the script samples the daemon's resident
# memory every 0.5 s; the peak is the kernel's VmHWM at the end. Also prints the ingest and sending times, and
# where the sampled peak was (/proc/PID/smaps at that sample: the heap and anonymous maps against files mapped,
# such as SQLite's -shm; the largest mappings). Only the daemon is measured: the simulator is its own process.
# RSS_RECEIPTS says what the simulator sends back:
#   all   (default) a receipt for every message: its queue holds 10M and 64 go at once, so none is dropped (the
#         simulator's default queue of 100,000 dropped 94% of them at this rate, which no gateway does: Kannel
#         keeps its DLRs and retries);
#   none  no receipts at all (the hand-off window goes silent and holds nothing);
#   lossy the simulator's defaults: most receipts dropped, so the hand-off window holds every message for its
#         20-minute lost-after time (the worst case for its memory).
#   Tests/Benchmarks/rss.sh [N=1000000]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000000}
mode=${RSS_RECEIPTS:-all}
# Bounded: 30 minutes, or more for a large N at about 1,000 messages a second.
limit=$(( n / 1000 + 900 > 1800 ? n / 1000 + 900 : 1800 ))
Deploy/setup-debian.sh build
source Tests/Benchmarks/lib.sh
bench_init rss
case "$mode" in
  all) bench_start_sim --receipt-delay-ms 0 --drain-seconds 0 --receipt-queue 10000000 --receipt-concurrency 64 --exit-after "$limit" ;;
  none) bench_start_sim --no-receipts --drain-seconds 0 --exit-after "$limit" ;;
  lossy) bench_start_sim --receipt-delay-ms 0 --drain-seconds 0 --exit-after "$limit" ;;
  *) echo "RSS_RECEIPTS must be all, none or lossy, not '$mode'" >&2; exit 2 ;;
esac
bench_config "http://127.0.0.1:$sim/cgi-bin/sendsms" 100000 messages 64 '"contact_policy": {"max_messages": 0},' POST
bench_campaign big "$n" 2026-01-01T00:00:00+07:00
bench_start_daemon
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
echo "idle RSS: $(( $(rss) / 1024 )) MiB"
start=$(date +%s.%N)
"$loa" campaign submit "$work/c.json" --config "$work/loa.json" >/dev/null
submitted=$(date +%s.%N)
peak=0; peak_at=0; t0=$SECONDS; handoff=0
# The carrier's hand-off window holds every message handed over and not yet reported passed on (a bit each in
# 64-id chunks): peak (from /metrics).
outstanding() { curl -s -H "Authorization: Bearer $LOA_API_TOKEN" "http://127.0.0.1:$port/metrics" | awk '/^loa_carrier_handoff_outstanding/ {s += $2} END {print s + 0}'; }
end=$((SECONDS + limit))
while [ $SECONDS -lt $end ]; do
  r=$(rss)
  if [ "$r" -gt "$peak" ]; then peak=$r; peak_at=$SECONDS; cp "/proc/$pid/smaps" "$work/smaps.peak" 2>/dev/null || true; fi
  h=$(outstanding); [ "${h%.*}" -gt "$handoff" ] && handoff=${h%.*}
  s=$("$loa" campaign show big --json --config "$work/loa.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$s" = completed ] && break
  sleep 0.5
done
done_at=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
read -r count span rate < <(bench_rate accepted)
printf '%-44s %12s\n' "what" "value"
printf '%-44s %12s\n' "recipients" "$n"
printf '%-44s %12s\n' "receipts (RSS_RECEIPTS)" "$mode"
printf '%-44s %12s\n' "submit (stream, normalize, store) s" "$(python3 -c "print(round($submitted - $start, 1))")"
printf '%-44s %12s\n' "sending s / messages per s" "$span / $rate"
printf '%-44s %12s\n' "sampled peak RSS MiB (s after the submit)" "$((peak / 1024)) ($((peak_at - t0)))"
printf '%-44s %12s\n' "kernel peak RSS (VmHWM) MiB" "$((hwm / 1024))"
printf '%-44s %12s\n' "hand-off window's peak outstanding messages" "$handoff"
printf '%-44s %12s\n' "receipts the simulator dropped (queue full)" "$(curl -s "http://127.0.0.1:$sim/sim/stats" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("receipts", {}).get("dropped", d.get("receipts_dropped", "?")))')"
printf '%-44s %12s\n' "store size MiB" "$(( $(stat -c %s "$work/data/loa.db") / 1048576 ))"
[ -f "$work/smaps.peak" ] && python3 - "$work/smaps.peak" <<'PY'
import sys, collections
maps, anon, cur, size = collections.Counter(), [], None, 0
for line in open(sys.argv[1]):
    f = line.split()
    if "-" in f[0] and not f[0].endswith(":"):
        cur = f[5] if len(f) > 5 else "[anon]"
    elif f[0] == "Size:":
        size = int(f[1])
    elif f[0] == "Rss:":
        maps[cur] += int(f[1])
        if cur == "[anon]": anon.append((int(f[1]), size))
print("at the sampled peak, RSS by mapping (KiB): " + "; ".join(f"{k} {v}" for k, v in maps.most_common(6)))
print("  its largest anonymous maps, RSS of size (KiB; 65536: a malloc arena of a thread): "
      + ", ".join(f"{r} of {s}" for r, s in sorted(anon, reverse=True)[:10]))
PY
echo "(total $(python3 -c "print(round($done_at - $start, 1))") s; $count accepted)"
bench_summary "peak RSS MiB (VmHWM), $n recipients ingested and sent, receipts $mode (rss.sh $n)" "$((hwm / 1024))" "-" "-" "<= 64, flat"
