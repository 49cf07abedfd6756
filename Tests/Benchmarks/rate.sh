#!/usr/bin/env bash
# Rate accuracy: the release daemon sends a campaign of RATE*SECONDS one-part messages through a real Kannel
# on 127.0.0.1 with the carrier's rate set to RATE messages/s, then reads the delivery log: the achieved rate
# over the sending period, the largest and the median one-second count.
#   Tests/Benchmarks/rate.sh [RATE=500] [SECONDS=60]
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${1:-500}; secs=${2:-60}; n=$((rate * secs))
Deploy/setup-debian.sh test
swift build -c release --product loa 2>&1 | grep -E 'error|warning' || true
loa="$(swift build -c release --show-bin-path)/loa"
work=$(mktemp -d /tmp/loa-bench-rate.XXXXXX)
harness=Tests/IntegrationTests/kannel/kannel-harness.sh
pid=""
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; bash "$harness" stop "$work/kannel" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
eval "$(bash "$harness" start "$work/kannel" | grep '^KANNEL_')"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export LOA_API_TOKEN=bench-token-0123456789 LOA_PW=$KANNEL_PASSWORD LOA_SECRET=bench-receipt-secret-0123
cat > "$work/loa.json" <<JSON
{ "data_dir": "data", "listen": {"address": "127.0.0.1", "port": $port}, "api_token": {"env": "LOA_API_TOKEN"},
  "log_level": "warning",
  "carriers": [{"name": "k", "kind": "kannel", "url": "$KANNEL_SENDSMS_URL", "username": "$KANNEL_USERNAME",
                "password": {"env": "LOA_PW"}, "receipt_secret": {"env": "LOA_SECRET"}, "rate": $rate,
                "rate_unit": "messages", "max_in_flight": 64}],
  "routing": {"default": "k"} }
JSON
python3 - "$work" "$n" <<'PY'
import sys
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/s.csv", "w") as f:
    f.write("phone\n")
    for i in range(n): f.write(f"091{i % 10_000_000:07d}\n")
open(f"{work}/t.txt", "w").write("Moi gop y du thao tren VNeID")
open(f"{work}/c.json", "w").write('{"id": "rate", "sender": "LOA", "templates": ["t.txt"], "segments": ["s.csv"], '
    '"windows": ["00:00-24:00"], "start": "2026-01-01T00:00:00+07:00", "deadline": "2099-02-01T00:00:00+07:00"}')
PY
"$loa" daemon --config "$work/loa.json" 2>"$work/daemon.log" &
pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$loa" campaign submit "$work/c.json" --config "$work/loa.json" >/dev/null
deadline=$((SECONDS + secs * 3 + 60))
while [ $SECONDS -lt $deadline ]; do
  state=$("$loa" campaign show rate --json --config "$work/loa.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$state" = completed ] && break
  sleep 1
done
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
