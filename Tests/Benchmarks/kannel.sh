#!/usr/bin/env bash
# Through a real Kannel: the release daemon sends N one-part messages to Kannel's sendsms (bearerbox + smsbox +
# the fake SMSC, all on 127.0.0.1), next to wrk on the same sendsms URL in the same run (the ceiling Kannel
# allows on this machine), next to wrk sending the very POST loa sends, and next to the plain libcurl multi client
# of dispatch.sh sending that POST too (what the HTTP client Loa is built on gets from Kannel, with nothing else to
# do). Three rounds of the four, each round's runs back to back; the table quotes medians of the rounds' ratios
# (the machine's speed drifts).
#   Tests/Benchmarks/kannel.sh [N=30000] [IN_FLIGHT=64] [METHOD=POST]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-30000}; inflight=${2:-64}; method=${3:-POST}
Deploy/setup-debian.sh test
source Tests/Benchmarks/lib.sh
bench_need wrk wrk
bench_init kannel
gcc -O2 -o "$work/curl-multi" Tests/Benchmarks/curl-multi.c -lcurl
bench_start_kannel
bench_config "$KANNEL_SENDSMS_URL" 100000 messages "$inflight" '"contact_policy": {"max_messages": 0},' "$method"
bench_start_daemon
# wrk asks for the same receipts (dlr-mask 31) so Kannel does the same work per message; they go to the
# daemon's /healthz, the cheapest answer there is.
dlrraw="http://127.0.0.1:$port/healthz?st=%d"
dlr=$(python3 -c "import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1], safe=''))" "$dlrraw")
url="$KANNEL_SENDSMS_URL?username=$KANNEL_USERNAME&password=$KANNEL_PASSWORD&from=LOA&to=%2B84910000001&text=Moi%20gop%20y&charset=UTF-8&dlr-mask=31&dlr-url=$dlr"
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "Moi gop y du thao tren VNeID"
wrk.headers["X-Kannel-Username"] = "$KANNEL_USERNAME"
wrk.headers["X-Kannel-Password"] = "$KANNEL_PASSWORD"
wrk.headers["X-Kannel-From"] = "LOA"
wrk.headers["X-Kannel-To"] = "+84910000001"
wrk.headers["X-Kannel-DLR-Mask"] = "31"
wrk.headers["X-Kannel-DLR-Url"] = "$dlrraw"
wrk.headers["Content-Type"] = "text/plain; charset=UTF-8"
LUA
# Each phase starts once Kannel has finished the previous one's receipts.
: > "$work/rounds"
for r in 1 2 3; do
  bench_kannel_quiet
  g=$(wrk -t1 -c"$inflight" -d5s "$url" 2>/dev/null | awk '/Requests\/sec/ {printf "%d\n", $2}')
  bench_kannel_quiet
  p=$(wrk -t1 -c"$inflight" -d5s -s "$work/post.lua" "$KANNEL_SENDSMS_URL" 2>/dev/null | awk '/Requests\/sec/ {printf "%d\n", $2}')
  bench_kannel_quiet
  # About five seconds' worth at wrk's rate.
  c=$("$work/curl-multi" "$KANNEL_SENDSMS_URL" $((p * 5)) "$inflight" "Moi gop y du thao tren VNeID" \
      "X-Kannel-Username: $KANNEL_USERNAME" "X-Kannel-Password: $KANNEL_PASSWORD" "X-Kannel-From: LOA" \
      "X-Kannel-To: +84910000001" "X-Kannel-DLR-Mask: 31" "X-Kannel-DLR-Url: $dlrraw" 2>/dev/null)
  bench_kannel_quiet
  bench_campaign "bench$r" "$n" 2026-01-01T00:00:00+07:00
  bench_submit_and_wait "bench$r" 600
  read -r count _ rate < <(bench_rate accepted "bench$r")
  echo "$r $g $p $c $rate $count" >> "$work/rounds"
done
python3 - "$work/rounds" "$n" "$inflight" "$method" <<'PY'
import sys, statistics
rounds, n, inflight, method = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = [tuple(int(x) for x in line.split()) for line in open(rounds)]
med = statistics.median
print(f"{'round':>5} {'wrk GET':>9} {'wrk POST':>9} {'libcurl':>9} {'loa':>9} {'loa/GET':>8} {'loa/POST':>9} {'libcurl/POST':>13} {'loa/libcurl':>12}")
for r, g, p, c, loa, k in rows:
    print(f"{r:>5} {g:>9} {p:>9} {c:>9} {loa:>9} {loa / g:>8.2f} {loa / p:>9.2f} {c / p:>13.2f} {loa / c:>12.2f}")
print(f"{'what (msg/s, median of ' + str(len(rows)) + ' rounds)':56} {'value':>10}")
print(f"{'wrk -t1 -c' + inflight + ' on Kannel sendsms, dlr-mask 31 (GET)':56} {med([x[1] for x in rows]):>10.0f}")
print(f"{'wrk -t1 -c' + inflight + ', the same POST as loa sends':56} {med([x[2] for x in rows]):>10.0f}")
print(f"{'plain libcurl multi, the same POST, ' + inflight + ' in flight':56} {med([x[3] for x in rows]):>10.0f}")
print(f"{'loa through Kannel (' + method + ', store + log on)':56} {med([x[4] for x in rows]):>10.0f}")
print(f"{'ratio loa / wrk GET (median of round ratios)':56} {med([x[4] / x[1] for x in rows]):>10.2f}")
print(f"{'ratio loa / wrk same POST (median of round ratios)':56} {med([x[4] / x[2] for x in rows]):>10.2f}")
print(f"{'ratio plain libcurl / wrk same POST (median)':56} {med([x[3] / x[2] for x in rows]):>10.2f}")
print(f"{'ratio loa / plain libcurl (median of round ratios)':56} {med([x[4] / x[3] for x in rows]):>10.2f}")
print(f"({sum(x[5] for x in rows)} of {n * len(rows)} messages accepted by Kannel)")
PY
