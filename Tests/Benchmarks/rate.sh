#!/usr/bin/env bash
# Rate accuracy: the release daemon sends a campaign of RATE*SECONDS one-part messages through a real Kannel
# on 127.0.0.1 with the carrier's rate set to RATE messages/s, then reads the delivery log: the achieved rate
# over the sending period, the largest and the median one-second count.
#   Tests/Benchmarks/rate.sh [RATE=500] [SECONDS=60]
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-500}; secs=${2:-60}; n=$((rate * secs))
Deploy/setup-debian.sh test
source Tests/Benchmarks/lib.sh
bench_init rate
bench_start_kannel
bench_config "$KANNEL_SENDSMS_URL" "$rate" messages 64
bench_campaign rate "$n" 2026-01-01T00:00:00+07:00
bench_start_daemon
bench_submit_and_wait rate $((secs * 3 + 60))
python3 - "$work/data/delivery.log" "$rate" <<'PY'
import json, sys, collections, datetime
rate = int(sys.argv[2])
times = []
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["event"] == "sending":
        times.append(datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp())
times.sort()
per = collections.Counter(int(t) for t in times)
full = [per[s] for s in range(int(times[0]) + 1, int(times[-1]))]  # whole seconds only
span = times[-1] - times[0]
print(f"configured            {rate} messages/s")
print(f"sent                  {len(times)} messages in {span:.1f} s")
print(f"achieved              {len(times) / span:.1f} messages/s ({len(times) / span / rate:.3f} of configured)")
print(f"largest 1-s count     {max(per.values())} (first second, with the initial burst: {per[int(times[0])]})")
print(f"median 1-s count      {sorted(full)[len(full) // 2] if full else 0}")
PY
