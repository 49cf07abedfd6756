#!/usr/bin/env bash
# Restart of a large store: a campaign of N recipients stored by Loa's ingest (`loa-bench ingest-loa`), then the
# release daemon started on it ROUNDS times after a clean stop (SIGTERM) and ROUNDS times after a SIGKILL while
# it was sending (64 requests in flight to an nginx sink, rate 2,000/s, so messages were `sending` at the kill).
# Per start: the time from exec to the first 200 of /healthz (the daemon is serving), and `loa_recovery_seconds`
# (the store's own recovery: log repair, in-flight scan) with the messages it made `unknown`. Medians.
#   Tests/Benchmarks/restart.sh [N=1000000] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000000}; rounds=${2:-3}
Deploy/setup-debian.sh build
source Tests/Benchmarks/lib.sh
bench_need nginx nginx-light
bench_init restart
swift build -c release --product loa-bench 2>&1 | grep -E 'error|warning' || true
bench="$(dirname "$loa")/loa-bench"
bench_start_sink
bench_config "http://127.0.0.1:$sink/cgi-bin/sendsms" 2000 messages 64 '"contact_policy": {"max_messages": 0},' POST
"$bench" generate "$work/s.csv" "$n"
mkdir -p -m 700 "$work/data"
"$bench" ingest-loa "$work/s.csv" "$work/data" >/dev/null
rm -f "$work/s.csv"
python3 - "$loa" "$work" "$port" "$rounds" "$n" <<'PY'
import json, os, signal, statistics, subprocess, sys, time, urllib.request
loa, work, port, rounds, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
base = f"http://127.0.0.1:{port}"
def get(path, token=False):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + os.environ["LOA_API_TOKEN"]} if token else {})
    return urllib.request.urlopen(req, timeout=5).read().decode()
def start():
    """Starts the daemon; returns (process, seconds from exec to the first 200 of /healthz)."""
    log = open(f"{work}/daemon.log", "a")
    t0 = time.perf_counter()
    p = subprocess.Popen([loa, "daemon", "--config", f"{work}/loa.json"], stderr=log)
    deadline = t0 + 120
    while time.perf_counter() < deadline:
        try:
            get("/healthz"); return p, time.perf_counter() - t0
        except Exception:
            if p.poll() is not None: sys.exit(f"the daemon exited: see {work}/daemon.log")
            time.sleep(0.002)
    p.kill(); sys.exit("the daemon did not answer /healthz within 120 s")
def metric(text, name):
    return next(float(l.split()[1]) for l in text.splitlines() if l.startswith(name + " "))
def sending():
    """Requests in flight and queued messages, from /metrics."""
    for _ in range(50):  # a busy daemon may drop a connection: asked again, bounded
        try:
            m = get("/metrics", token=True)
            inflight = sum(float(l.split()[1]) for l in m.splitlines() if l.startswith("loa_carrier_in_flight{"))
            queued = sum(float(l.split()[1]) for l in m.splitlines() if l.startswith("loa_messages{") and 'state="queued"' in l)
            return inflight, int(queued)
        except Exception as e:
            err = e; time.sleep(0.1)
    raise err
rows = {"clean": [], "killed": []}
p = None
try:
    p, _ = start()  # the first start (creates the config's other files), not counted
    for r in range(rounds):
        for kind in ("clean", "killed"):
            if kind == "clean":
                p.send_signal(signal.SIGTERM); p.wait(120)
            else:
                end = time.time() + 30
                while time.time() < end and sending()[0] == 0: time.sleep(0.01)
                p.send_signal(signal.SIGKILL); p.wait(30)
            p, ready = start()
            m = get("/metrics", token=True)
            rows[kind].append((ready, metric(m, "loa_recovery_seconds"), metric(m, "loa_recovery_unknown_messages")))
    queued = sending()[1]
finally:
    if p and p.poll() is None:
        p.send_signal(signal.SIGTERM); p.wait(120)
med = statistics.median
print(f"{'start of a ' + format(n, ',') + '-recipient store (median of ' + str(rounds) + ')':58} {'to /healthz s':>14} {'recovery s':>11} {'unknown':>8}")
for kind, label in (("clean", "after a clean stop (SIGTERM)"), ("killed", "after SIGKILL while sending")):
    v = rows[kind]
    print(f"{label:58} {med(x[0] for x in v):>14.3f} {med(x[1] for x in v):>11.3f} {med(x[2] for x in v):>8.0f}")
    print(f"  rounds: " + "; ".join(f"{a:.3f} s / {b:.3f} s / {c:.0f}" for a, b, c in v))
print(f"({queued} of {n} still queued at the end; store {sum(os.path.getsize(work + '/data/' + f) for f in os.listdir(work + '/data') if f.startswith('loa.db')) // 1048576} MiB)")
open(f"{work}/restart.summary", "w").write(f"{max(med(x[0] for x in rows['clean']), med(x[0] for x in rows['killed'])):.3f}\n")
PY
secs=$(cat "$work/restart.summary")
bench_summary "restart of a $n-recipient store, s to /healthz (restart.sh, worse of clean and SIGKILL)" "$secs" "-" "-" "<= 1 s"
