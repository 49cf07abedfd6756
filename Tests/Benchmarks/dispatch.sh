#!/usr/bin/env bash
# Dispatch throughput: the release daemon sends N one-part messages (store on, delivery log on, no rate limit
# to speak of) to an nginx sink on 127.0.0.1 that answers like Kannel (202 "0: Accepted for delivery").
# Baselines on the same sink in the same run: a plain libcurl multi client (Tests/Benchmarks/curl-multi.c,
# the same number of transfers in flight) and wrk. Each baseline runs 3 times; the table quotes medians.
# Loa uses Kannel's POST mode by default (keep-alive and at most once: see README, "At most once on the wire");
# the libcurl client POSTs the same headers and body. METHOD=GET sends the query-string form to both.
#   Tests/Benchmarks/dispatch.sh [N=200000] [IN_FLIGHT=64] [METHOD=POST]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-200000}; inflight=${2:-64}; method=${3:-POST}
Deploy/setup-debian.sh build
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >/dev/null
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
source Tests/Benchmarks/lib.sh
bench_init dispatch
sink=$(free_port)
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server { listen 127.0.0.1:$sink; keepalive_requests 1000000; location / { return 202 "0: Accepted for delivery"; } }
}
CONF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
npid=$!
bench_config "http://127.0.0.1:$sink/cgi-bin/sendsms" 100000 messages "$inflight" '"contact_policy": {"max_messages": 0},' "$method"
bench_campaign bench "$n" 2026-01-01T00:00:00+07:00
bench_start_daemon
url="http://127.0.0.1:$sink/cgi-bin/sendsms?username=u&password=x&from=LOA&to=%2B84910000001&text=Moi%20gop%20y&charset=UTF-8&dlr-mask=31&dlr-url=http%3A%2F%2F127.0.0.1%2Fdlr"
gcc -O2 -o "$work/curl-multi" Tests/Benchmarks/curl-multi.c -lcurl
med() { sort -n | sed -n 2p; }
base=$(for _ in 1 2 3; do wrk -t1 -c"$inflight" -d5s "$url" 2>/dev/null | awk '/Requests\/sec/ {printf "%d\n", $2}'; done | med)
if [ "$method" = POST ]; then
  cbase=$(for _ in 1 2 3; do "$work/curl-multi" "${url%%\?*}" 100000 "$inflight" "Moi gop y du thao tren VNeID" 2>/dev/null; done | med)
else
  cbase=$(for _ in 1 2 3; do "$work/curl-multi" "$url" 100000 "$inflight" 2>/dev/null; done | med)
fi
# Loa's HTTP path alone (the Kannel adapter and the curl engine, each message started as the dispatcher starts
# them; no store, no dispatcher), to tell the cost of the store and the dispatcher from the HTTP path's.
swift build -c release --product loa-bench 2>&1 | grep -E 'error|warning' || true
sbase=$(for _ in 1 2 3; do "$(dirname "$loa")/loa-bench" send "${url%%\?*}" 100000 "$inflight" "$method" | sed 's/.*messages_per_s=//'; done | med)
# The baseline ran first, alone; now the campaign (sending starts at its commit).
"$loa" campaign submit "$work/c.json" --config "$work/loa.json" >/dev/null
bench_wait_state bench completed 600
python3 - "$work/data/delivery.log" "$base" "$n" "$inflight" "$cbase" "$sbase" <<'PY'
import json, sys, datetime
base, n, inflight, cbase, sbase = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
t = [datetime.datetime.fromisoformat(json.loads(l)["time"].replace("Z", "+00:00")).timestamp()
     for l in open(sys.argv[1]) if '"event":"accepted"' in l]
span = max(t) - min(t)
rate = len(t) / span
print(f"{'what':44} {'msg/s':>10}")
print(f"{'wrk -t1 -c' + inflight + ', same sendsms URL, same sink':44} {base:>10}")
print(f"{'plain libcurl multi client, same request, ' + inflight + ' in flight':44} {cbase:>10}")
print(f"{'loa HTTP path alone (loa-bench send)':44} {sbase:>10}")
print(f"{'loa dispatch (store + delivery log on)':44} {rate:>10.0f}")
print(f"{'ratio loa / libcurl multi':44} {rate / cbase:>10.2f}")
print(f"{'ratio loa / wrk':44} {rate / base:>10.2f}")
print(f"{'ratio loa HTTP path alone / libcurl multi':44} {sbase / cbase:>10.2f}")
print(f"({len(t)} of {n} messages accepted in {span:.1f} s)")
PY
