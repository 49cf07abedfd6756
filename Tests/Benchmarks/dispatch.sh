#!/usr/bin/env bash
# Dispatch throughput: the release daemon sends N one-part messages (store on, delivery log on, no rate limit
# to speak of) to an nginx sink on 127.0.0.1 that answers like Kannel (202 "0: Accepted for delivery").
# Baselines on the same sink in the same run: a plain libcurl multi client (Tests/Benchmarks/curl-multi.c,
# the same number of transfers in flight) and wrk, in three rounds; the table quotes medians.
# Beside the rates: the CPU microseconds per message of the plain client (its rusage) and of each daemon thread
# (/proc/PID/task/*/stat, by thread name), and the rows the store wrote per message (`loa_store_rows_written_total`);
# each campaign starts once its ingest is over, so neither counts the ingest.
# Loa uses Kannel's POST mode by default (keep-alive and at most once: see README, "At most once on the wire");
# the libcurl client POSTs the same headers and body. METHOD=GET sends the query-string form to both.
#   Tests/Benchmarks/dispatch.sh [N=200000] [IN_FLIGHT=64] [METHOD=POST]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-200000}; inflight=${2:-64}; method=${3:-POST}
Deploy/setup-debian.sh build
source Tests/Benchmarks/lib.sh
bench_need nginx nginx-light
bench_need wrk wrk
bench_init dispatch
bench_start_sink
bench_config "http://127.0.0.1:$sink/cgi-bin/sendsms" 100000 messages "$inflight" '"contact_policy": {"max_messages": 0},' "$method"
bench_start_daemon
url="http://127.0.0.1:$sink/cgi-bin/sendsms?username=u&password=x&from=LOA&to=%2B84910000001&text=Moi%20gop%20y&charset=UTF-8&dlr-mask=31&dlr-url=http%3A%2F%2F127.0.0.1%2Fdlr"
gcc -O2 -o "$work/curl-multi" Tests/Benchmarks/curl-multi.c -lcurl
swift build -c release --product loa-bench 2>&1 | grep -E 'error|warning' || true
bench="$(dirname "$loa")/loa-bench"
# Three rounds, each: wrk, the plain libcurl client, Loa's HTTP path alone (the Kannel adapter and the curl engine,
# each message started as the dispatcher starts them; no store, no dispatcher), then a campaign of N through the
# daemon. The machine's speed drifts by tens of percent within minutes, so each round's ratio compares runs
# seconds apart, and the table quotes medians of the rounds.
: > "$work/rounds"
for r in 1 2 3; do
  w=$(wrk -t1 -c"$inflight" -d5s "$url" 2>/dev/null | awk '/Requests\/sec/ {printf "%d\n", $2}')
  if [ "$method" = POST ]; then
    cj=$(python3 Tests/Benchmarks/procstat.py run "$work/curl-multi" "${url%%\?*}" 100000 "$inflight" "Moi gop y du thao tren VNeID")
  else
    cj=$(python3 Tests/Benchmarks/procstat.py run "$work/curl-multi" "$url" 100000 "$inflight")
  fi
  c=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["out"])' "$cj")
  ccpu=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cpu"] / 100000 * 1e6)' "$cj")
  h=$("$bench" send "${url%%\?*}" 100000 "$inflight" "$method" | sed 's/.*messages_per_s=//')
  start=$(bench_start_in "$(bench_lead "$n")")
  bench_campaign "bench$r" "$n" "$start"
  bench_submit_timed
  bench_sleep_until "$start" "$(bench_margin)"  # the snapshots take a while on a loaded machine
  before=$(bench_snap "$pid" metrics)
  bench_before "$start"
  bench_wait_state "bench$r" completed 600
  after=$(bench_snap "$pid" metrics)
  read -r count _ rate < <(bench_rate accepted "bench$r")
  echo "$r $w $c $h $rate $count" >> "$work/rounds"
  echo "{\"plain\": $ccpu, \"loa\": $(bench_per "$before" "$after" "$count")}" >> "$work/cpu"
done
python3 - "$work/rounds" "$n" "$inflight" "$work/cpu" <<'PY'
import json, sys, statistics
rounds, n, inflight = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cpu = [json.loads(l) for l in open(sys.argv[4])]
rows = [tuple(int(x) for x in line.split()) for line in open(rounds)]
med = statistics.median
print(f"{'round':>5} {'wrk':>9} {'libcurl':>9} {'loa HTTP':>9} {'loa':>9} {'loa/libcurl':>12} {'HTTP/libcurl':>13} {'loa/wrk':>8}")
for r, w, c, h, loa, k in rows:
    print(f"{r:>5} {w:>9} {c:>9} {h:>9} {loa:>9} {loa / c:>12.2f} {h / c:>13.2f} {loa / w:>8.2f}")
print(f"{'what (msg/s, median of ' + str(len(rows)) + ' rounds)':54} {'value':>10}")
print(f"{'wrk -t1 -c' + inflight + ', same sendsms URL, same sink':54} {med([x[1] for x in rows]):>10.0f}")
print(f"{'plain libcurl multi client, same request, ' + inflight + ' in flight':54} {med([x[2] for x in rows]):>10.0f}")
print(f"{'loa HTTP path alone (loa-bench send)':54} {med([x[3] for x in rows]):>10.0f}")
print(f"{'loa dispatch (store + delivery log on)':54} {med([x[4] for x in rows]):>10.0f}")
print(f"{'ratio loa / libcurl multi (median of round ratios)':54} {med([x[4] / x[2] for x in rows]):>10.2f}")
print(f"{'ratio loa / wrk (median of round ratios)':54} {med([x[4] / x[1] for x in rows]):>10.2f}")
print(f"{'ratio loa HTTP path alone / libcurl multi (median)':54} {med([x[3] / x[2] for x in rows]):>10.2f}")
print(f"{'rows the store wrote per message':54} {med([c['loa'].get('rows', 0) for c in cpu]):>10.3f}")
print(f"{'plain libcurl client, CPU us per message':54} {med([c['plain'] for c in cpu]):>10.1f}")
print(f"{'loa, all threads, CPU us per message':54} {med([c['loa']['all'] for c in cpu]):>10.1f}")
for t in sorted({t for c in cpu for t in c['loa']['threads']}):
    print(f"{'  ' + t:54} {med([c['loa']['threads'].get(t, 0) for c in cpu]):>10.1f}")
print(f"{'CPU ratio loa / plain client (median of round ratios)':54} {med([c['loa']['all'] / c['plain'] for c in cpu]):>10.2f}")
print(f"({sum(x[5] for x in rows)} of {n * len(rows)} messages accepted)")
PY
