#!/usr/bin/env bash
# Several daemons on one PostgreSQL (issue 21's benchmark): recipients per second for 1, 2 and 3 nodes ("n1", "n2",
# "n3": each its own work directory and delivery log, the same PostgreSQL, the same schema) beside SQLite's single
# node, on one campaign against one `loa gateway-sim`, in one run, medians of ROUNDS rounds. The campaign is
# submitted to n1 only; the other nodes find it in the shared store (the dispatcher reads the active campaigns every
# 500 ms) and claim from it with SKIP LOCKED: each configuration's line says how many recipients each node accepted.
#
# Per configuration and recipient:
#   - recipients/s: the delivery logs' "accepted" lines of all nodes, first to last;
#   - ingest recipients/s: N / the seconds `loa campaign submit` took (upload, parse, store, ANALYZE);
#   - database rows written: pg_stat_database tup_inserted + tup_updated + tup_deleted, and WAL bytes
#     (pg_current_wal_lsn), deltas over the sending (from 3 s before the campaign's start to its last final
#     state; with receipts, to the last receipt) and over the ingest;
#   - database CPU ms: utime + stime of the postmaster and its children (/proc/PID/stat; exited children through the
#     postmaster's cutime + cstime), over the sending and over the ingest; SQLite's is inside the daemon;
#   - daemons' CPU ms: utime + stime of every node's daemon, over the sending;
#   - DB commits (pg_stat_database xact_commit) over the sending, and the growth of `messages` (table and indexes).
# The campaign starts LEAD seconds after its submission (the first: 10 s + 1 s per 2,000 recipients; then 8 s + three
# times the configuration's last submission's time; BENCH_LEAD overrides) so the ingest is over before the sending's
# snapshot. `uptime` before and after.
#   Tests/Benchmarks/cluster.sh [N=50000] [IN_FLIGHT=8] [ROUNDS=3] [receipts]
# receipts: the simulator sends each message's final receipt to the node that sent it (--receipt-delay-ms 100), and a
# configuration ends when every recipient is in a final state (delivered, or failed for the simulator's 5% undelivered).
# BENCH_LOA=/path/to/loa runs another build; BENCH_CONFIGS="sqlite pg1" only some configurations. "pg3off" (not in the
# default set) is pg3 with the cluster's log off (`store.cluster_log: false`, nodes o1-o3, n1 stopped meanwhile), for
# the log's cost on three nodes in the same rounds: BENCH_CONFIGS="pg3 pg3off".
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-50000}; inflight=${2:-8}; rounds=${3:-3}; receipts=${4:-}
Deploy/setup-debian.sh test
source Tests/Benchmarks/lib.sh
bench_init cluster
base=$work
# The first lead of a configuration covers a slow ingest (2,000 recipients/s); later ones 8 s and three times its
# last submission's time.
first_lead=${BENCH_LEAD:-$(( 10 + n / 2000 ))}
declare -A lead
pgdir=$(mktemp -u "${TMPDIR:-/tmp}/loa-pg.XXXXXX")
declare -A ports pids
cleanup_all() {
  for k in "${!pids[@]}"; do kill -TERM "${pids[$k]}" 2>/dev/null && wait "${pids[$k]}" 2>/dev/null; done
  Tests/pg.sh stop "$pgdir" 2>/dev/null || true
  pid=""; work=$base; bench_cleanup
}
trap cleanup_all EXIT
LOA_PG_FSYNC=${LOA_PG_FSYNC:-on} Tests/pg.sh start "$pgdir"
pg_url=$(Tests/pg.sh url "$pgdir")
pg_port=$(cat "$pgdir/port")
psql_loa() { /usr/lib/postgresql/15/bin/psql -h "$pgdir/server/socket" -p "$pg_port" -U loa -d loa -XAtq -c "$1"; }
export LOA_SIM_TOKEN=bench-sim-token LOA_SIM_RECEIPT_SECRET=$LOA_SECRET
if [ "$receipts" = receipts ]; then bench_start_sim --receipt-delay-ms 100 --delivered-rate 0.95; else bench_start_sim --no-receipts; fi
carrier=$(python3 - "$sim" "$inflight" <<'PY'
import sys, re
t = open("Config/carriers/gateway-sim-generic.json5").read()
t = t.replace('"sim-generic"', '"k"').replace("http://127.0.0.1:13100", f"http://127.0.0.1:{sys.argv[1]}")
t = re.sub(r'"rate": \d+', '"rate": 1000000', t)
t = re.sub(r'"max_in_flight": \d+', f'"max_in_flight": {sys.argv[2]}', t)
print(t)
PY
)
# The daemons' configs: SQLite, and one per PostgreSQL node.
for d in sqlite n1 n2 n3 o1 o2 o3; do
  work="$base/$d"; mkdir -p "$work"; port=$(free_port); ports[$d]=$port
  extra='"contact_policy": {"max_messages": 0},'
  clog=""; [[ $d == o* ]] && clog=', "cluster_log": false'
  [ "$d" != sqlite ] && extra+=" \"store\": {\"kind\": \"postgresql\", \"url\": \"$pg_url\", \"password\": {\"file\": \"$pgdir/password\"}, \"node\": \"$d\"$clog},"
  bench_config_carrier "$carrier" "$extra"
done
start_node() { work="$base/$1"; port=${ports[$1]}; bench_start_daemon; pids[$1]=$pid; pid=""; }
stop_node() { kill -TERM "${pids[$1]}" && wait "${pids[$1]}" 2>/dev/null || true; unset "pids[$1]"; }
start_node sqlite
start_node n1

# snap FILE NODES...: the database's counters and CPU, the nodes' CPU, the time.
snap() {
  local out=$1; shift
  local db="0 0 0 0"
  [ "$1" != sqlite ] && db=$(psql_loa "SELECT tup_inserted + tup_updated + tup_deleted, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0'), xact_commit,
    COALESCE(pg_total_relation_size(to_regclass('public.messages')), 0) FROM pg_stat_database WHERE datname = 'loa'" | tr '|' ' ')
  local daemons=()
  for d in "$@"; do daemons+=("${pids[$d]}"); done
  python3 - "$out" "$pgdir/server/data/postmaster.pid" "$db" "${daemons[@]}" <<'PY'
import json, os, sys, time
out, pidfile, db, daemons = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]
def stat(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])  # ppid, utime + stime, cutime + cstime
pm = int(open(pidfile).readline())
ticks = sum(stat(pm)[1:])
for p in os.listdir("/proc"):
    if p.isdigit() and int(p) != pm:
        try:
            ppid, own, _ = stat(p)
            if ppid == pm: ticks += own
        except OSError: pass  # gone between the listing and the read
json.dump({"t": time.time(), "tup": int(db[0]), "wal": int(float(db[1])), "commits": int(db[2]), "size": int(db[3]), "db_ticks": ticks,
           "daemon_ticks": sum(stat(d)[1] for d in daemons)}, open(out, "w"))
PY
}

# wait_final ID SECONDS: until every recipient has a final state (with receipts: past sent, i.e. delivered or failed), bounded.
wait_final() {
  if [ "$receipts" != receipts ]; then bench_wait_state "$1" completed "$2"; return; fi
  local end=$((SECONDS + $2))
  while [ $SECONDS -lt $end ]; do
    "$loa" campaign show "$1" --json --config "$work/loa.json" | python3 -c '
import json, sys; s = json.load(sys.stdin)["states"]
sys.exit(0 if sum(v for k, v in s.items() if k not in ("queued", "sending", "sent", "buffered")) >= int(sys.argv[1]) else 1)' "$n" && return 0
    sleep 0.5
  done
  echo "campaign $1 did not get every receipt in $2 s" >&2; return 1
}

# one_config ROUND NAME NODES...: one campaign through NODES (submitted to the first), one JSON line in $base/rounds.
one_config() {
  local r=$1 name=$2; shift 2
  local id="r$r$name"
  work="$base/$1"; port=${ports[$1]}
  local start; start=$(bench_start_in "${lead[$name]:-$first_lead}")
  bench_campaign "$id" "$n" "$start"
  snap "$base/s0" "$@"
  local t0; t0=$(date +%s.%N)
  "$loa" campaign submit "$work/c.json" --config "$work/loa.json" >/dev/null
  local t1; t1=$(date +%s.%N)
  # A submission slower than the lead (a loaded machine) makes the round "late": its snapshot may miss the first
  # sends; the summary leaves late rounds out when it has others.
  local late=0
  bench_sleep_until "$start" 3 || late=1
  snap "$base/s1" "$@"
  bench_before "$start" || late=1
  [ -z "${BENCH_LEAD:-}" ] && lead[$name]=$(python3 -c "print(int(8 + 3 * ($t1 - $t0)))")
  wait_final "$id" 900
  sleep 2  # backends publish their pg_stat counters within a second of going idle
  snap "$base/s2" "$@"
  local logs=()
  for d in "$@"; do logs+=("$base/$d/data/delivery.log"); done
  python3 - "$id" "$name" "$r" "$n" "$t0" "$t1" "$late" "$base/s0" "$base/s1" "$base/s2" "${logs[@]}" >> "$base/rounds" <<'PY'
import json, sys, datetime, os
cid, name, r, n, t0, t1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
late = sys.argv[7] == "1"
s0, s1, s2 = (json.load(open(p)) for p in sys.argv[8:11])
hz = os.sysconf("SC_CLK_TCK")
times, per_node = [], {}
for path in sys.argv[11:]:
    node = path.split("/")[-3]
    k = 0
    for line in open(path):
        if '"event":"accepted"' in line:
            e = json.loads(line)
            if e["campaign"] == cid:
                times.append(datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()); k += 1
    per_node[node] = k
span = max(times) - min(times) if len(times) > 1 else 1
print(json.dumps({"round": r, "config": name, "late": late, "count": len(times), "rate": len(times) / span, "per_node": per_node,
    "ingest_rate": n / (t1 - t0),
    "rows": (s2["tup"] - s1["tup"]) / n, "wal": (s2["wal"] - s1["wal"]) / n, "commits": (s2["commits"] - s1["commits"]) / n,
    "size": (s2["size"] - s0["size"]) / n,
    "ingest_rows": (s1["tup"] - s0["tup"]) / n, "ingest_wal": (s1["wal"] - s0["wal"]) / n,
    "db_ms": (s2["db_ticks"] - s1["db_ticks"]) * 1000 / hz / n, "daemon_ms": (s2["daemon_ticks"] - s1["daemon_ticks"]) * 1000 / hz / n,
    "ingest_db_ms": (s1["db_ticks"] - s0["db_ticks"]) * 1000 / hz / n}))
PY
  tail -1 "$base/rounds" >&2
}

echo "before: $(uptime)"
: > "$base/rounds"
configs=" ${BENCH_CONFIGS:-sqlite pg1 pg2 pg3} "
for r in $(seq 1 "$rounds"); do
  [[ $configs == *" sqlite "* ]] && one_config "$r" sqlite sqlite
  [[ $configs == *" pg1 "* ]] && one_config "$r" pg1 n1
  if [[ $configs == *" pg2 "* || $configs == *" pg3 "* ]]; then
    start_node n2
    [[ $configs == *" pg2 "* ]] && one_config "$r" pg2 n1 n2
    if [[ $configs == *" pg3 "* ]]; then start_node n3; one_config "$r" pg3 n1 n2 n3; stop_node n3; fi
    stop_node n2
  fi
  if [[ $configs == *" pg3off "* ]]; then
    stop_node n1
    start_node o1; start_node o2; start_node o3
    one_config "$r" pg3off o1 o2 o3
    stop_node o3; stop_node o2; stop_node o1
    start_node n1
  fi
done
echo "after: $(uptime)"
python3 - "$base/rounds" "$n" "$rounds" "${receipts:-no receipts}" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"N={sys.argv[2]} one-part recipients, {sys.argv[3]} rounds (medians), gateway-sim ({sys.argv[4]}), PostgreSQL 15 fsync on")
print("| configuration | recipients/s | ingest recipients/s | DB rows written / recipient | WAL bytes / recipient | DB commits / recipient | DB CPU ms / recipient | daemons' CPU ms / recipient | accepted per node (last round) |")
print("|---|---|---|---|---|---|---|---|---|")
names = {"sqlite": "SQLite, 1 node", "pg1": "PostgreSQL, 1 node", "pg2": "PostgreSQL, 2 nodes", "pg3": "PostgreSQL, 3 nodes",
         "pg3off": "PostgreSQL, 3 nodes, cluster log off"}
for c in ("sqlite", "pg1", "pg2", "pg3", "pg3off"):
    rs = [r for r in rows if r["config"] == c]
    if not rs: continue
    rs = [r for r in rs if not r["late"]] or rs
    m = lambda k: st.median(r[k] for r in rs)
    pg = c != "sqlite"
    print(f"| {names[c]} | {m('rate'):.0f} | {m('ingest_rate'):.0f} | {m('rows'):.2f} | {m('wal'):.0f} | {m('commits'):.4f} | "
          + (f"{m('db_ms'):.3f}" if pg else "(in the daemon)") + f" | {m('daemon_ms'):.3f} | "
          + ", ".join(f"{k} {v}" for k, v in rs[-1]["per_node"].items()) + " |")
on = {r["round"]: r["rate"] for r in rows if r["config"] == "pg3"}
off = {r["round"]: r["rate"] for r in rows if r["config"] == "pg3off"}
ratios = [on[k] / off[k] for k in sorted(on) if k in off]
if ratios:
    print("cluster log on/off, 3 nodes, recipients/s per round: " + ", ".join(f"{x:.2f}" for x in ratios) + f"; median {st.median(ratios):.2f}")
ing = [r for r in rows if r["config"] != "sqlite"]
if ing:
    print(f"PostgreSQL ingest, per recipient (medians over the PostgreSQL configurations): {st.median(r['ingest_rows'] for r in ing):.2f} rows, "
          f"{st.median(r['ingest_wal'] for r in ing):.0f} WAL bytes, {st.median(r['ingest_db_ms'] for r in ing):.3f} DB CPU ms; "
          f"messages' size (table and indexes) grew {st.median(r['size'] for r in ing):.0f} bytes per recipient, load to last state")
PY
