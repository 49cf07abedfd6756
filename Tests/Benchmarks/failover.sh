#!/usr/bin/env bash
# A PostgreSQL failover under a running campaign, on loopback, by hand (issue 21, item 6): a primary (Tests/pg.sh), a
# streaming standby made with `pg_basebackup -R` on a port of its own (the same non-root server user), one `loa daemon`
# whose store URL names both, postgresql://loa@127.0.0.1:P1,127.0.0.1:P2/loa?target_session_attrs=read-write, and
# `loa gateway-sim` as the gateway (receipts retried across the outage). Once KILL_AT of the recipients are accepted,
# the primary dies (`pg_ctl stop -m immediate`: no checkpoint, what a crash leaves), OUTAGE seconds pass (a failover
# manager's detection), the standby is promoted (`pg_ctl promote`), and the daemon must reconnect by itself and finish.
# Then: the store's final states, the simulator's accepted and duplicate counts, what never reached a final state.
#
#   Tests/Benchmarks/failover.sh [MODE=sync] [N=20000] [RATE=1000]
# MODE  sync   synchronous_standby_names names the standby (synchronous_commit on): a commit returns once the
#              standby has flushed it
#       async  asynchronous streaming replication (PostgreSQL's default)
#       lag    async, with the standby's WAL receiver stopped (SIGSTOP) LAG seconds (default 2) before the primary
#              dies and killed before the promotion: a standby cut off from its primary (a partition, a slow link),
#              so what the primary committed in those seconds is lost
#       sync-lag  sync with the same stopped and killed receiver: commits wait for the standby instead
# Environment: KILL_AT (0.4), OUTAGE (3 s), LAG (2 s), LOA_BIN (default: the debug build), LOA_PG_FSYNC (on),
# BENCH_KEEP=1 keeps the work directory (the daemon's config, logs, delivery log).
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-sync}; n=${2:-20000}; rate=${3:-1000}
kill_at=${KILL_AT:-0.4}; outage=${OUTAGE:-3}; lag=${LAG:-2}
case "$mode" in sync|async|lag|sync-lag) ;; *) echo "failover.sh: MODE is sync, async, lag or sync-lag" >&2; exit 2 ;; esac
Deploy/setup-debian.sh test
source Tests/Benchmarks/lib.sh
if [ -z "${LOA_BIN:-}" ]; then
  swift build --product loa 2>&1 | grep -E 'error|warning' || true
  LOA_BIN="$(swift build --show-bin-path)/loa"
fi
loa=$LOA_BIN
bin=/usr/lib/postgresql/15/bin
work=$(mktemp -d /tmp/loa-bench-failover.XXXXXX)
pid=""; spid=""; npid=""; kannel=0
port=$(free_port)
# Outside $work: the server's user must reach them.
primary=$(mktemp -u "${TMPDIR:-/tmp}/loa-pg.XXXXXX"); standby=$(mktemp -u "${TMPDIR:-/tmp}/loa-pg.XXXXXX")
walreceiver=""
cleanup_all() {
  [ -n "$walreceiver" ] && kill -CONT "$walreceiver" 2>/dev/null
  bench_cleanup
  Tests/pg.sh stop "$standby" 2>/dev/null || true
  Tests/pg.sh stop "$primary" 2>/dev/null || true
}
trap cleanup_all EXIT

user=nobody
id loa-test >/dev/null 2>&1 && user=loa-test
as_server() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }

LOA_PG_FSYNC=${LOA_PG_FSYNC:-on} Tests/pg.sh start "$primary"
p1=$(cat "$primary/port")
psql1() { as_server "$bin/psql" -X -qAt -h "$primary/server/socket" -p "$p1" -U loa -d loa -c "$1"; }

# The standby: a base backup streamed from the primary with -R (standby.signal and primary_conninfo), the password
# from a 0600 passfile of the server's user, never a command line.
mkdir -p "$standby/server/socket"
cp "$primary/password" "$standby/password"
p2=$(free_port); echo "$p2" > "$standby/port"
(umask 077; printf '127.0.0.1:%s:*:loa:%s\n' "$p1" "$(cat "$primary/password")" > "$standby/server/pgpass")
if [ "$(id -u)" -eq 0 ]; then chown -R "$user" "$standby/server"; chmod 711 "$standby"; fi
as_server env PGPASSFILE="$standby/server/pgpass" "$bin/pg_basebackup" -h 127.0.0.1 -p "$p1" -U loa -D "$standby/server/data" \
  -R -X stream -c fast >"$standby/basebackup.log" 2>&1 || { cat "$standby/basebackup.log" >&2; exit 1; }
# cluster_name is the standby's application_name at the primary: what synchronous_standby_names names.
as_server "$bin/pg_ctl" -D "$standby/server/data" -l "$standby/server/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $p2 -c unix_socket_directories=$standby/server/socket -c fsync=${LOA_PG_FSYNC:-on} -c max_connections=200 -c cluster_name=standby1" \
  start >/dev/null || { cat "$standby/server/server.log" >&2; exit 1; }
if [ "$mode" = sync ] || [ "$mode" = sync-lag ]; then
  psql1 "ALTER SYSTEM SET synchronous_standby_names = 'standby1'"
  psql1 "SELECT pg_reload_conf()" >/dev/null
fi
want=async; case "$mode" in sync*) want=sync ;; esac
for _ in $(seq 1 100); do
  [ "$(psql1 "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1' AND state = 'streaming'")" = "$want" ] && break
  sleep 0.1
done
echo "primary 127.0.0.1:$p1, standby 127.0.0.1:$p2 streaming ($(psql1 "SELECT sync_state FROM pg_stat_replication"))" >&2

export LOA_SIM_TOKEN=bench-sim-token LOA_SIM_RECEIPT_SECRET=$LOA_SECRET
# Receipts retried for up to a minute: the daemon refuses them while it has no database.
bench_start_sim --seed 21 --delivered-rate 1 --receipt-retries 100 --receipt-retry-ms 600
url="postgresql://loa@127.0.0.1:$p1,127.0.0.1:$p2/loa?target_session_attrs=read-write"
bench_config "http://127.0.0.1:$sim/cgi-bin/sendsms" "$rate" segments 16 \
  "\"contact_policy\": {\"max_messages\": 0}, \"store\": {\"kind\": \"postgresql\", \"url\": \"$url\", \"password\": {\"file\": \"$primary/password\"}, \"node\": \"n1\"},"
sed -i 's/"log_level": "warning"/"log_level": "info"/' "$work/loa.json"
bench_start_daemon
bench_campaign f1 "$n" "$(bench_start_in 0)"
"$loa" campaign submit "$work/c.json" --config "$work/loa.json" >/dev/null
sim_stat() { curl -fsS "http://127.0.0.1:$sim/sim/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
target=$(python3 -c "print(int($n * $kill_at))")
end=$((SECONDS + 600))
until [ "$(sim_stat accepted)" -ge "$target" ]; do
  [ $SECONDS -lt $end ] || { echo "failover.sh: $target accepted not reached in 600 s" >&2; exit 1; }
  sleep 0.05
done
if [ "$mode" = lag ] || [ "$mode" = sync-lag ]; then
  walreceiver=$(pgrep -u "$user" -f "postgres: standby1: walreceiver" || true)
  [ -n "$walreceiver" ] || { echo "failover.sh: no walreceiver found" >&2; exit 1; }
  kill -STOP "$walreceiver"
  echo "the standby's WAL receiver (pid $walreceiver) stopped; the primary dies in $lag s" >&2
  sleep "$lag"
fi
before=$(sim_stat accepted)
lsn=$(psql1 "SELECT pg_current_wal_lsn() || ' ' || coalesce((SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn) FROM pg_stat_replication), -1)" 2>/dev/null || echo "? ?")
t_kill=$(date +%s.%N)
as_server "$bin/pg_ctl" -D "$primary/server/data" -m immediate stop >/dev/null
echo "primary killed (immediate) at $before accepted; its WAL at ${lsn% *}, the standby $(printf '%s' "${lsn#* }") bytes behind" >&2
sleep "$outage"
if [ -n "$walreceiver" ]; then
  # What the stopped receiver has not read is still in its socket's buffer on loopback (a continued receiver reads
  # it all, dead primary or not: nothing would be lost). A partition loses it: the receiver is killed, the standby's
  # postmaster restarts its processes and the standby holds only the WAL it had written.
  kill -KILL "$walreceiver" 2>/dev/null || true; walreceiver=""
  for _ in $(seq 1 300); do
    [ "$(as_server "$bin/psql" -X -qAt -h "$standby/server/socket" -p "$p2" -U loa -d loa -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ] && break
    sleep 0.1
  done
fi
as_server "$bin/pg_ctl" -D "$standby/server/data" -w promote >/dev/null
t_promote=$(date +%s.%N)
echo "standby promoted $(python3 -c "print(round($t_promote - $t_kill, 1))") s after the kill" >&2

# wait_done SECONDS: until the campaign completes, or its recipients not yet final stay as many for 20 s, or SECONDS pass.
not_final() {
  "$loa" campaign show f1 --json --config "$work/loa.json" 2>/dev/null | python3 -c 'import json,sys
c = json.load(sys.stdin); s = c.get("states", {})
print(c["state"], sum(v for k, v in s.items() if k in ("queued", "sending", "sent")))' || echo "? ?"
}
wait_done() {
  local end=$((SECONDS + $1)) last="" since=$SECONDS now
  while [ $SECONDS -lt $end ]; do
    now=$(not_final)
    [ "${now% *}" = completed ] && return 0
    if [ "$now" != "$last" ]; then last=$now; since=$SECONDS; elif [ $((SECONDS - since)) -ge 20 ]; then return 1; fi
    sleep 0.5
  done
  return 1
}
since_promote() { python3 -c "print(round($(date +%s.%N) - $t_promote, 1))"; }
restarted=0
if wait_done 300; then
  echo "campaign completed $(since_promote) s after the promotion" >&2
else
  # A fallback: claims whose COMMIT the crash cut off (committed, never acknowledged) are released by the daemon
  # once the store answers again; if any were left `sending` on this node, a start turns them `unknown` (their
  # request may have left), never resends them.
  echo "campaign still $(not_final | sed 's/ / with not final: /') $(since_promote) s after the promotion: the daemon is restarted (SIGTERM, start)" >&2
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  mv "$work/daemon.log" "$work/daemon-1.log"
  bench_start_daemon
  restarted=1
  wait_done 120 && echo "campaign completed after the restart" >&2 || echo "campaign not completed after the restart: $(not_final)" >&2
  cat "$work/daemon-1.log" "$work/daemon.log" > "$work/daemon-all.log"; mv "$work/daemon-all.log" "$work/daemon.log"
fi
"$loa" campaign show f1 --json --config "$work/loa.json" > "$work/show.json"
curl -fsS "http://127.0.0.1:$sim/sim/accepted" > "$work/accepted.txt"
curl -fsS "http://127.0.0.1:$sim/sim/stats" > "$work/stats.json"
python3 - "$work" "$t_promote" "$n" "$mode" "$restarted" <<'PY'
import datetime, json, sys
work, t_promote, n, mode, restarted = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
log, show, stats, acc = f"{work}/data/delivery.log", json.load(open(f"{work}/show.json")), json.load(open(f"{work}/stats.json")), open(f"{work}/accepted.txt").read()
ts = lambda e: datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
events = [json.loads(l) for l in open(log)]
after = [ts(e) for e in events if e["event"] == "accepted" and ts(e) >= t_promote]
states = {k: v for k, v in show.get("states", {}).items() if v}
final = sum(v for k, v in states.items() if k in ("delivered", "failed", "expired", "unknown", "cancelled", "suppressed"))
twice = sum(1 for l in acc.splitlines() if len(l.split()) == 2 and int(l.split()[1]) > 1)
print(f"mode {mode}: N={n}, store: {states}; final {final}, not final {n - final}{', after a restart of the daemon' if restarted else ''}")
print(f"simulator: accepted {stats['accepted']}, duplicates {stats['duplicates']}, recipients accepted more than once {twice}")
print(f"first acceptance after the promotion: {after[0] - t_promote:.1f} s" if after else "no acceptance after the promotion")
PY
# The daemon's own words: each error message once with its count, and the span from the first error to the last.
python3 - "$work/daemon.log" "$t_kill" <<'PY'
import collections, datetime, re, sys
t_kill = float(sys.argv[2])
errors, first, last, notes = collections.Counter(), None, None, []
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(\S+) (\w+) loa: (.*?)(?: [a-z_.]+=|$)", line)
    if not m: continue
    t = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
    if m.group(2) == "error":
        errors[m.group(3)] += 1
        first = first or t; last = t
    elif "recovered" in line or "nothing to recover" in line:
        notes.append(line.strip()[:200])
print("daemon errors: " + (", ".join(f"'{k}' x{v}" for k, v in errors.items()) or "none"))
if first: print(f"errors from {first - t_kill:+.1f} s to {last - t_kill:+.1f} s after the kill")
for n in notes[1:]: print("at the restart: " + n)
PY
