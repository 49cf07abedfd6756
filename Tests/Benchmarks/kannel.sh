#!/usr/bin/env bash
# Through a real Kannel: the release daemon sends N one-part messages to Kannel's sendsms (bearerbox + smsbox +
# the fake SMSC, all on 127.0.0.1), next to wrk on the same sendsms URL in the same run (the ceiling Kannel
# allows on this machine), and next to wrk sending the very POST loa sends. wrk runs 3 times each; the table
# quotes medians.
#   Tests/Benchmarks/kannel.sh [N=30000] [IN_FLIGHT=64] [METHOD=POST]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-30000}; inflight=${2:-64}; method=${3:-POST}
Deploy/setup-debian.sh test
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
source Tests/Benchmarks/lib.sh
bench_init kannel
bench_start_kannel
bench_config "$KANNEL_SENDSMS_URL" 100000 messages "$inflight" '"contact_policy": {"max_messages": 0},' "$method"
bench_campaign bench "$n" 2026-01-01T00:00:00+07:00
bench_start_daemon
# wrk asks for the same receipts (dlr-mask 31) so Kannel does the same work per message; they go to the
# daemon's /healthz, the cheapest answer there is.
dlr=$(python3 -c "import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1], safe=''))" "http://127.0.0.1:$port/healthz?st=%d")
url="$KANNEL_SENDSMS_URL?username=$KANNEL_USERNAME&password=$KANNEL_PASSWORD&from=LOA&to=%2B84910000001&text=Moi%20gop%20y&charset=UTF-8&dlr-mask=31&dlr-url=$dlr"
med() { sort -n | sed -n 2p; }
base=$(for _ in 1 2 3; do wrk -t1 -c"$inflight" -d5s "$url" 2>/dev/null | awk '/Requests\/sec/ {printf "%d\n", $2}'; done | med)
# The same request as Loa's POST mode (X-Kannel-* headers, the text as the body): what Kannel allows for it.
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "Moi gop y du thao tren VNeID"
wrk.headers["X-Kannel-Username"] = "$KANNEL_USERNAME"
wrk.headers["X-Kannel-Password"] = "$KANNEL_PASSWORD"
wrk.headers["X-Kannel-From"] = "LOA"
wrk.headers["X-Kannel-To"] = "+84910000001"
wrk.headers["X-Kannel-DLR-Mask"] = "31"
wrk.headers["X-Kannel-DLR-Url"] = "http://127.0.0.1:$port/healthz?st=%d"
wrk.headers["Content-Type"] = "text/plain; charset=UTF-8"
LUA
bench_kannel_quiet
pbase=$(for _ in 1 2 3; do wrk -t1 -c"$inflight" -d5s -s "$work/post.lua" "$KANNEL_SENDSMS_URL" 2>/dev/null | awk '/Requests\/sec/ {printf "%d\n", $2}'; done | med)
bench_kannel_quiet  # Kannel finishes the receipts of wrk's messages before the campaign starts
"$loa" campaign submit "$work/c.json" --config "$work/loa.json" >/dev/null
bench_wait_state bench completed 600
read -r count span rate < <(bench_rate accepted)
printf '%-52s %10s\n' "what" "msg/s"
printf '%-52s %10s\n' "wrk -t1 -c$inflight on Kannel's sendsms, dlr-mask 31 (median of 3)" "$base"
printf '%-52s %10s\n' "wrk -t1 -c$inflight, the same POST as loa's (median of 3)" "$pbase"
printf '%-52s %10s\n' "loa through Kannel ($method, store + log on)" "$rate"
python3 -c "print(f\"{'ratio loa / wrk (GET)':52} {$rate / $base:>10.2f}\")"
python3 -c "print(f\"{'ratio loa / wrk (the same POST)':52} {$rate / $pbase:>10.2f}\")"
echo "($count of $n messages accepted by Kannel in $span s)"
