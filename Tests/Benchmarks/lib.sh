# Shared by the benchmark scripts (sourced from the package root): the release build, a scratch directory and
# the cleanup of everything a script started (daemon, simulator, Kannel, nginx: by pid), a daemon with one
# carrier, and a campaign of numbered one-part recipients.
export LOA_API_TOKEN=bench-token-0123456789 LOA_SECRET=bench-receipt-secret-0123
export LOA_PW=${LOA_PW:-x}

# bench_need COMMAND PACKAGE: installs the Debian PACKAGE (as root, else with sudo) when COMMAND is missing.
bench_need() {
  command -v "$1" >/dev/null && return 0
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# bench_config URL RATE UNIT IN_FLIGHT [EXTRA_JSON] [METHOD=GET]: writes $work/loa.json for carrier "k".
# Both configs turn two-person approval off: a benchmark submits as the admin and measures the sending.
bench_config() {
  cat > "$work/loa.json" <<JSON
{ "data_dir": "data", "listen": {"address": "127.0.0.1", "port": $port}, "api_token": {"env": "LOA_API_TOKEN"},
  "log_level": "warning", "approval": {"required": false}, ${5:-}
  "carriers": [{"name": "k", "kind": "kannel", "url": "$1", "username": "${KANNEL_USERNAME:-u}",
                "password": {"env": "LOA_PW"}, "receipt_secret": {"env": "LOA_SECRET"}, "rate": $2,
                "rate_unit": "$3", "max_in_flight": $4, "method": "${6:-GET}"}],
  "routing": {"default": "k"} }
JSON
}

# bench_config_carrier CARRIER_JSON [EXTRA_JSON]: writes $work/loa.json with one carrier entry given whole (named "k").
bench_config_carrier() {
  cat > "$work/loa.json" <<JSON
{ "data_dir": "data", "listen": {"address": "127.0.0.1", "port": $port}, "api_token": {"env": "LOA_API_TOKEN"},
  "log_level": "warning", "approval": {"required": false}, ${2:-}
  "carriers": [$1],
  "routing": {"default": "k"} }
JSON
}

# bench_rate EVENT [CAMPAIGN]: prints "<count> <span seconds> <rate>" of EVENT lines in the delivery log (first
# to last), of one campaign if given.
bench_rate() {
  python3 - "$work/data/delivery.log" "$1" "${2:-}" <<'PY'
import json, sys, datetime
t = [datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
     for e in (json.loads(l) for l in open(sys.argv[1]) if f'"event":"{sys.argv[2]}"' in l)
     if not sys.argv[3] or e["campaign"] == sys.argv[3]]
span = max(t) - min(t) if len(t) > 1 else 1
print(len(t), f"{span:.2f}", f"{len(t) / span:.0f}")
PY
}

# bench_campaign ID N START: writes $work/c.json with N recipients (+84910000000 onwards), sending all day.
bench_campaign() {
  python3 - "$work" "$1" "$2" "$3" <<'PY'
import sys
work, cid, n, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(f"{work}/s.csv", "w") as f:
    f.write("phone\n")
    for i in range(n): f.write(f"091{i % 10_000_000:07d}\n")
open(f"{work}/t.txt", "w").write("Moi gop y du thao tren VNeID")
open(f"{work}/c.json", "w").write(f'{{"id": "{cid}", "sender": "LOA", "templates": ["t.txt"], "segments": ["s.csv"], '
    f'"windows": ["00:00-24:00"], "start": "{start}", "deadline": "2099-02-01T00:00:00+07:00"}}')
PY
}

# bench_start_daemon: starts the daemon in the background (pid in $pid) and waits for /healthz.
bench_start_daemon() {
  "$loa" daemon --config "$work/loa.json" 2>"$work/daemon.log" &
  pid=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "the daemon did not start:" >&2; cat "$work/daemon.log" >&2; return 1
}

# bench_start_sink: starts nginx on a free port of 127.0.0.1 ($sink, pid in $npid) answering every request like
# Kannel's sendsms (202 "0: Accepted for delivery"), keep-alive without limit, no access log.
bench_start_sink() {
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
  for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:$sink/" 2>/dev/null && return 0; sleep 0.1; done
  echo "nginx did not start:" >&2; cat "$work/nginx/error.log" >&2; return 1
}

# bench_submit_and_wait ID SECONDS: submits $work/c.json (campaign ID) and waits until it has completed (bounded).
bench_submit_and_wait() {
  "$loa" campaign submit "$work/c.json" --config "$work/loa.json" >/dev/null
  bench_wait_state "$1" completed "$2"
}

# bench_wait_state ID STATE SECONDS: polls the campaign until it reaches STATE (bounded).
bench_wait_state() {
  local end=$((SECONDS + $3))
  while [ $SECONDS -lt $end ]; do
    local s
    s=$("$loa" campaign show "$1" --json --config "$work/loa.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    [ "$s" = "$2" ] && return 0
    sleep 0.5
  done
  echo "campaign $1 did not reach $2 in $3 s" >&2; return 1
}

# bench_init NAME: builds the release `loa` ($loa), makes $work and a free $port, and stops on exit whatever the
# script started: $pid (daemon), $spid (simulator), $npid (nginx), Kannel in $work/kannel.
# BENCH_LOA=/path/to/loa runs that binary instead (another commit's build, for a before/after in one session).
bench_init() {
  if [ -n "${BENCH_LOA:-}" ]; then
    loa=$BENCH_LOA
  else
    swift build -c release --product loa 2>&1 | grep -E 'error|warning' || true
    loa="$(swift build -c release --show-bin-path)/loa"
  fi
  work=$(mktemp -d "/tmp/loa-bench-$1.XXXXXX")
  pid=""; spid=""; npid=""; kannel=0
  port=$(free_port)
  trap bench_cleanup EXIT
}

bench_cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "$spid" ] && kill -TERM "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
  [ -n "$npid" ] && kill -TERM "$npid" 2>/dev/null
  [ "$kannel" = 1 ] && bash Tests/IntegrationTests/kannel/kannel-harness.sh stop "$work/kannel" >/dev/null 2>&1
  if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}

# bench_start_sim [FLAGS...]: starts `loa gateway-sim` on a free port ($sim), bounded to 30 minutes.
bench_start_sim() {
  "$loa" gateway-sim --port 0 --ready-file "$work/sim.port" --exit-after 1800 --stats-every 3600 "$@" 2>"$work/sim.log" &
  spid=$!
  for _ in $(seq 1 100); do [ -s "$work/sim.port" ] && break; sleep 0.1; done
  sim=$(cat "$work/sim.port")
}

# bench_kannel_quiet: waits (at most 60 s) until Kannel has nothing left to do: bearerbox's "SMS:" counters
# (messages and the receipts coming back from the fake SMSC) stay the same for a second with nothing queued.
bench_kannel_quiet() {
  local last="" same=0 end=$((SECONDS + 60)) now
  while [ $SECONDS -lt $end ]; do
    now=$(curl -fsS "$KANNEL_ADMIN_URL/status.txt?password=loa-admin" 2>/dev/null | grep -m1 '^SMS: received' || true)
    if [ -n "$now" ] && [ "$now" = "$last" ] && [ "$(grep -o '(0 queued)' <<<"$now" | wc -l)" -eq 2 ]; then
      same=$((same + 1)); [ $same -ge 2 ] && return 0
    else
      same=0
    fi
    last=$now; sleep 0.5
  done
  echo "Kannel did not go quiet within 60 s: $last" >&2
}

# bench_start_kannel: a real Kannel (bearerbox, smsbox, fake SMSC) in $work/kannel; sets KANNEL_* and LOA_PW.
bench_start_kannel() {
  kannel=1
  eval "$(bash Tests/IntegrationTests/kannel/kannel-harness.sh start "$work/kannel" | grep '^KANNEL_')"
  export LOA_PW=$KANNEL_PASSWORD
}

# bench_snap PID [METRICS]: CPU ticks per thread name of PID and the machine's busy/idle ticks (JSON); with
# METRICS (any word) also the daemon's rows written and transactions from /metrics (Tests/Benchmarks/procstat.py).
bench_snap() {
  if [ -n "${2:-}" ]; then python3 Tests/Benchmarks/procstat.py snap "$1" "http://127.0.0.1:$port/metrics"
  else python3 Tests/Benchmarks/procstat.py snap "$1"; fi
}

# bench_per BEFORE AFTER COUNT: microseconds of CPU per message by thread, rows and transactions per message (JSON).
bench_per() { python3 Tests/Benchmarks/procstat.py per "$1" "$2" "$3"; }

# bench_start_in SECONDS: an ISO time SECONDS from now (a campaign's start, so its ingest is over before a snapshot).
bench_start_in() {
  python3 -c 'import datetime, sys; print((datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=float(sys.argv[1]))).isoformat(timespec="seconds"))' "$1"
}

# bench_lead N: seconds from a submission to its campaign's start that cover the ingest of N recipients and the
# snapshots before the start on a loaded machine: bench_margin + 5 s + twice the last submission's time
# (bench_submit_timed), or + 10 s + 1 s per 2,000 recipients before the first (BENCH_LEAD overrides).
bench_lead() {
  if [ -n "${BENCH_LEAD:-}" ]; then echo "$BENCH_LEAD"
  elif [ -s "$work/submit.secs" ]; then python3 -c "print(int($(bench_margin) + 5 + 2 * $(cat "$work/submit.secs")))"
  else echo $(( $(bench_margin) + 10 + $1 / 2000 )); fi
}

# bench_submit_timed: submits $work/c.json, keeping how long it took (ingest included) for bench_lead.
bench_submit_timed() {
  local t0; t0=$(date +%s.%N)
  "$loa" campaign submit "$work/c.json" --config "$work/loa.json" >/dev/null
  python3 -c "print(round($(date +%s.%N) - $t0, 1))" > "$work/submit.secs"
}

# bench_margin: seconds before a campaign's start at which its before-snapshots begin (each is a Python start, near
# a second on a loaded machine; BENCH_MARGIN overrides). The window is then a little longer than the run: CPU per
# message is unchanged (the daemon idles), the machine's busy share is diluted a little.
bench_margin() { echo "${BENCH_MARGIN:-15}"; }

# bench_sleep_until ISO_TIME [MARGIN=0]: sleeps until MARGIN seconds before then; fails if that is already past (the
# campaign would have started before a snapshot meant to precede it: raise BENCH_LEAD).
bench_sleep_until() {
  python3 -c 'import datetime, sys, time
left = datetime.datetime.fromisoformat(sys.argv[1]).timestamp() - float(sys.argv[2]) - time.time()
if left < 0: sys.exit("the campaign started before its ingest was over: raise BENCH_LEAD")
time.sleep(left)' "$1" "${2:-0}"
}

# bench_before ISO_TIME: fails if ISO_TIME has passed (a snapshot taken since then may miss part of the run).
bench_before() {
  python3 -c 'import datetime, sys, time
late = time.time() - datetime.datetime.fromisoformat(sys.argv[1]).timestamp()
if late >= 0: sys.exit(f"the snapshot came {late:.1f} s after the campaign started (a loaded machine): raise BENCH_MARGIN")' "$1"
}

# bench_summary GOAL FIGURE FLOOR RATIO TARGET: one row of Tests/Benchmarks/all.sh's table, appended to
# $BENCH_SUMMARY when all.sh runs the script (nothing otherwise).
bench_summary() {
  [ -n "${BENCH_SUMMARY:-}" ] && printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$BENCH_SUMMARY"
  return 0
}
