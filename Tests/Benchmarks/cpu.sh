#!/usr/bin/env bash
# Where the two cores go: CPU time per message, by process and by Loa thread, for the plain libcurl multi client
# (curl-multi.c) and for Loa's dispatch (store and delivery log on), on the same nginx sink, in the same run, and
# how busy the machine was during each. A run whose machine is busy near 2 cores is bound by them; one well below
# is bound by a wait (a thread that waits for another), and the per-thread figures say which thread is short of work.
# CPU comes from /proc (utime + stime of each process and thread, kernel work done on their behalf included),
# read just before and just after each run; the machine's busy share from /proc/stat over the same window.
# Also the rows the store wrote per message (`loa_store_rows_written_total` over the run) and the goal's ratio: Loa's
# CPU per message, all threads, over the plain client's (issue 18: at most 1.5).
# Last, what the store's and dispatcher's share of the cores costs the HTTP path by itself: `loa-bench send` alone,
# then beside a bounded busy loop that takes as much of a core as those two threads took.
#   Tests/Benchmarks/cpu.sh [N=100000] [IN_FLIGHT=64] [ROUNDS=3]      (CPU_CONTENTION=0: without the last part)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-100000}; inflight=${2:-64}; rounds=${3:-3}
Deploy/setup-debian.sh build
source Tests/Benchmarks/lib.sh
bench_need nginx nginx-light
bench_init cpu
bench_start_sink
bench_config "http://127.0.0.1:$sink/cgi-bin/sendsms" 100000 messages "$inflight" '"contact_policy": {"max_messages": 0},' POST
bench_start_daemon
gcc -O2 -o "$work/curl-multi" Tests/Benchmarks/curl-multi.c -lcurl
text="Moi gop y du thao tren VNeID"

# snapshot: CPU ticks of nginx (master and worker), of each daemon thread (by name), and the machine's busy/idle.
cat > "$work/cpu.py" <<'PY'
import json, os, sys
def ticks(path):
    f = open(path).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])          # utime + stime (fields 14 and 15)
def comm(path): return open(path).read().strip()
def nginx(master):
    pids = [int(master)] + [int(p) for p in open(f"/proc/{master}/task/{master}/children").read().split()]
    return sum(ticks(f"/proc/{p}/stat") for p in pids)
def threads(pid):
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try: name = comm(f"/proc/{pid}/task/{t}/comm"); out[name] = out.get(name, 0) + ticks(f"/proc/{pid}/task/{t}/stat")
        except OSError: pass
    return out
def machine():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(v) - v[3] - v[4], v[3] + v[4]    # busy, idle (+ iowait)
what, nginx_pid = sys.argv[1], sys.argv[2]
if what == "snap":
    busy, idle = machine()
    print(json.dumps({"nginx": nginx(nginx_pid), "loa": threads(sys.argv[3]) if len(sys.argv) > 3 else {}, "busy": busy, "idle": idle}))
elif what == "client":
    # runs the client, prints its rate and the CPU of the client, nginx and the machine over the run
    import resource, subprocess
    b = json.loads(os.popen(f"python3 {sys.argv[0]} snap {nginx_pid}").read())
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    rate = subprocess.run(sys.argv[3:], capture_output=True, text=True, check=True).stdout.strip()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    a = json.loads(os.popen(f"python3 {sys.argv[0]} snap {nginx_pid}").read())
    hz = os.sysconf("SC_CLK_TCK")
    client = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"rate": float(rate), "client": client, "nginx": (a["nginx"] - b["nginx"]) / hz,
                      "busy": (a["busy"] - b["busy"]) / hz, "idle": (a["idle"] - b["idle"]) / hz}))
PY

: > "$work/rounds"
for r in $(seq 1 "$rounds"); do
  c=$(python3 "$work/cpu.py" client "$npid" "$work/curl-multi" "http://127.0.0.1:$sink/cgi-bin/sendsms" "$n" "$inflight" "$text")
  # The campaign starts once its ingest (CSV, inserts) is over: before the first snapshot.
  start=$(bench_start_in "$(bench_lead "$n")")
  bench_campaign "cpu$r" "$n" "$start"
  bench_submit_timed
  bench_sleep_until "$start" "$(bench_margin)"  # the snapshots take a while on a loaded machine
  before=$(python3 "$work/cpu.py" snap "$npid" "$pid"); mbefore=$(bench_snap "$pid" metrics)
  bench_before "$start"
  # A light poll (curl, 10 per second, bounded) so that the window holds little besides the run.
  for _ in $(seq 1 6000); do
    curl -fsS -H "Authorization: Bearer $LOA_API_TOKEN" "http://127.0.0.1:$port/api/v1/campaigns/cpu$r" | grep -Eq '"state" *: *"completed"' && break
    sleep 0.1
  done
  after=$(python3 "$work/cpu.py" snap "$npid" "$pid"); mafter=$(bench_snap "$pid" metrics)
  [ "$("$loa" campaign show "cpu$r" --json --config "$work/loa.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = completed ] || { echo "campaign cpu$r did not complete" >&2; exit 1; }
  read -r count span rate < <(bench_rate accepted "cpu$r")
  per=$(bench_per "$mbefore" "$mafter" "$count")
  echo "{\"round\": $r, \"client\": $c, \"before\": $before, \"after\": $after, \"count\": $count, \"span\": $span, \"per\": $per}" >> "$work/rounds"
done

python3 - "$work/rounds" "$n" <<'PY'
import json, os, sys, statistics
hz, n, med = os.sysconf("SC_CLK_TCK"), int(sys.argv[2]), statistics.median
rows = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    c, b, a, k, span = r["client"], r["before"], r["after"], r["count"], float(r["span"])
    loa = {t: (a["loa"].get(t, 0) - b["loa"].get(t, 0)) / hz / k * 1e6 for t in a["loa"]}
    x = {"plain rate": c["rate"], "plain client": c["client"] / n * 1e6, "plain nginx": c["nginx"] / n * 1e6,
         "plain cores": c["busy"] / (c["busy"] + c["idle"]) * os.cpu_count(), "loa rate": k / span,
         "curl": loa.get("loa-curl", 0), "store": loa.get("loa-store", 0), "dispatch": loa.get("loa-dispatch", 0),
         "other": sum(loa.values()) - sum(loa.get(t, 0) for t in ("loa-curl", "loa-store", "loa-dispatch")),
         "loa nginx": (a["nginx"] - b["nginx"]) / hz / k * 1e6,
         "loa cores": (a["busy"] - b["busy"]) / ((a["busy"] + a["idle"]) - (b["busy"] + b["idle"])) * os.cpu_count()}
    x["loa"] = x["curl"] + x["store"] + x["dispatch"] + x["other"]
    x["rate ratio"] = x["loa rate"] / x["plain rate"]
    x["cpu ratio"] = (x["plain client"] + x["plain nginx"]) / (x["loa"] + x["loa nginx"])
    x["goal ratio"] = x["loa"] / x["plain client"]
    x["rows"] = r["per"].get("rows", 0)
    rows.append(x)
cols = ["plain rate", "loa rate", "rate ratio", "plain client", "plain nginx", "loa", "curl", "store", "dispatch", "other",
        "loa nginx", "cpu ratio", "goal ratio", "rows", "plain cores", "loa cores"]
print("per round (rates in msg/s, CPU in microseconds per message, cores: the machine's busy CPUs during the run)")
print(" ".join(f"{c:>12}" for c in ["round"] + cols))
for i, x in enumerate(rows, 1):
    print(" ".join([f"{i:>12}"] + [f"{x[c]:>12.2f}" if "ratio" in c or "cores" in c or c == "rows" else f"{x[c]:>12.0f}" for c in cols]))
m = {c: med([x[c] for x in rows]) for c in cols}
print()
print(f"{'what (median of ' + str(len(rows)) + ' rounds)':62} {'value':>10}")
for label, key, f in [("plain libcurl multi client, msg/s", "plain rate", "{:.0f}"), ("loa dispatch (store + delivery log on), msg/s", "loa rate", "{:.0f}"),
                      ("rate ratio loa / plain", "rate ratio", "{:.2f}"),
                      ("plain client, CPU us per message", "plain client", "{:.1f}"), ("nginx for the plain client, us per message", "plain nginx", "{:.1f}"),
                      ("loa, all threads, us per message", "loa", "{:.1f}"), ("  loa-curl (libcurl multi loop)", "curl", "{:.1f}"),
                      ("  loa-store (SQLite writer, delivery log)", "store", "{:.1f}"), ("  loa-dispatch", "dispatch", "{:.1f}"),
                      ("  other loa threads", "other", "{:.1f}"), ("nginx for loa, us per message", "loa nginx", "{:.1f}"),
                      ("CPU ratio (plain + nginx) / (loa + nginx)", "cpu ratio", "{:.2f}"),
                      ("CPU ratio loa / plain client (median of rounds; goal <= 1.5)", "goal ratio", "{:.2f}"),
                      ("rows the store wrote per message", "rows", "{:.3f}"),
                      ("machine busy during the plain run, cores of 2", "plain cores", "{:.2f}"), ("machine busy during loa's run, cores of 2", "loa cores", "{:.2f}")]:
    print(f"{label:62} {f.format(m[key]):>10}")
open(sys.argv[1] + ".summary", "w").write(f"{m['loa']:.1f} {m['plain client']:.1f} {m['goal ratio']:.2f} {m['loa rate']:.0f} {m['plain rate']:.0f} {m['rows']:.3f}\n")
PY
read -r loa_us plain_us goal_ratio loa_rate plain_rate rows < "$work/rounds.summary"
bench_summary "CPU us per message, single-message path (cpu.sh $n $inflight $rounds)" "$loa_us" "$plain_us (plain libcurl client)" "$goal_ratio" "<= 1.5"
bench_summary "  its throughput, msg/s (same rounds; $rows rows/msg)" "$loa_rate" "$plain_rate (plain libcurl client)" "$(python3 -c "print(round($loa_rate / $plain_rate, 2))")" "-"

[ "${CPU_CONTENTION:-1}" = 0 ] && exit 0  # all.sh leaves the part below out
# What the store's and dispatcher's share of the cores costs the HTTP path: Loa's HTTP path alone (loa-bench send,
# no store), then beside a busy loop that takes as much of a core as loa-store and loa-dispatch took above
# (their CPU per message times Loa's rate, median), alternately.
duty=$(python3 - "$work/rounds" <<'PY'
import json, os, sys, statistics
hz = os.sysconf("SC_CLK_TCK")
v = []
for line in open(sys.argv[1]):
    r = json.loads(line); b, a = r["before"]["loa"], r["after"]["loa"]
    cpu = sum((a.get(t, 0) - b.get(t, 0)) / hz for t in ("loa-store", "loa-dispatch"))
    v.append(cpu / float(r["span"]))
print(f"{min(0.95, statistics.median(v)):.2f}")
PY
)
cat > "$work/busy.py" <<'PY'
import sys, time
duty, end = float(sys.argv[1]), time.time() + 120          # bounded: stops by itself after 2 minutes
while time.time() < end:
    t = time.perf_counter()
    while time.perf_counter() - t < duty * 0.002: pass
    time.sleep((1 - duty) * 0.002)
PY
swift build -c release --product loa-bench 2>&1 | grep -E 'error|warning' || true
bench="$(dirname "$loa")/loa-bench"
: > "$work/contention"
for r in $(seq 1 "$rounds"); do
  alone=$("$bench" send "http://127.0.0.1:$sink/cgi-bin/sendsms" "$n" "$inflight" POST | sed 's/.*messages_per_s=//')
  python3 "$work/busy.py" "$duty" & busy=$!
  loaded=$("$bench" send "http://127.0.0.1:$sink/cgi-bin/sendsms" "$n" "$inflight" POST | sed 's/.*messages_per_s=//')
  kill "$busy"; wait "$busy" 2>/dev/null || true
  echo "$alone $loaded" >> "$work/contention"
done
python3 - "$work/contention" "$duty" <<'PY'
import sys, statistics
rows = [tuple(int(x) for x in l.split()) for l in open(sys.argv[1])]
print()
print("rounds (msg/s, alone / beside the busy loop): " + ", ".join(f"{a} / {b}" for a, b in rows))
print(f"{'loa HTTP path alone (loa-bench send), msg/s':62} {statistics.median(a for a, _ in rows):>10.0f}")
print(f"{'  beside a busy loop taking ' + sys.argv[2] + ' of a core, msg/s':62} {statistics.median(b for _, b in rows):>10.0f}")
print(f"{'  ratio (median of round ratios)':62} {statistics.median(b / a for a, b in rows):>10.2f}")
PY
