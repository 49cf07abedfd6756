#!/usr/bin/env bash
# The store's dispatch path against SQLite's own floor, on the same database: a campaign of N recipients
# (default 200,000) is stored by Loa's ingest, then
#   - `loa-bench cycle`: Loa claims BATCH messages and records each accepted (a gateway id), one transaction
#     each, until none is left (no HTTP): what the writer thread costs per message, delivery log included;
#   - Python's sqlite3 on a copy of the same database: the bare UPDATEs those two steps need, one row per
#     statement and 100 rows per statement (`IN (…)` for the claim, `UPDATE … FROM (VALUES …)` for the record),
#     no log, no Swift: the floor any design with a durable per-recipient state pays on this machine;
#   - SQLite's floor for the rows `loa-bench cycle` measured the store writing per message (Tests/Benchmarks/floor.py:
#     the per-recipient writes as bare 100-row UPDATEs, the rest as one-row INSERTs per 100), and Loa's ratio to it.
#     FLOOR_ROWS=w sets those rows per message instead.
#   Tests/Benchmarks/store-path.sh [N=200000] [BATCH=800]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-200000}; batch=${2:-800}
Deploy/setup-debian.sh build
swift build -c release --product loa-bench 2>&1 | grep -E 'error|warning' || true
bin="$(swift build -c release --show-bin-path)/loa-bench"
work=$(mktemp -d /tmp/loa-bench-store.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin" generate "$work/s.csv" "$n"
mkdir -p "$work/d0"
"$bin" ingest-loa "$work/s.csv" "$work/d0" >/dev/null
cp -r "$work/d0" "$work/loa"
line=$("$bin" cycle "$work/loa" "$batch")
python3 - "$work" "$line" <<'PY'
import sqlite3, time, shutil, sys, re
work, line = sys.argv[1], sys.argv[2]
def fresh():
    shutil.rmtree(f"{work}/py", ignore_errors=True); shutil.copytree(f"{work}/d0", f"{work}/py")
    db = sqlite3.connect(f"{work}/py/loa.db", isolation_level=None)
    for p in ("journal_mode=WAL", "synchronous=NORMAL", "temp_store=MEMORY"): db.execute("PRAGMA " + p)
    return db, [r[0] for r in db.execute("SELECT id FROM messages WHERE state = 0 ORDER BY id LIMIT 40000")]
def timed(db, ids, body):
    db.execute("BEGIN IMMEDIATE"); t = time.perf_counter(); body(db, ids); dt = time.perf_counter() - t; db.execute("COMMIT")
    return dt / len(ids) * 1e6
def per_row(db, ids):
    for i in ids: db.execute("UPDATE messages SET state = 1, attempts = attempts + 1, updated_at = 5 WHERE id = ?", (i,))
    for i in ids: db.execute("UPDATE messages SET state = 2, gateway_id = ?, sent_at = 5, updated_at = 6 WHERE id = ? AND state = 1", (f"g{i}", i))
def bulk(db, ids):
    claim = "UPDATE messages SET state = 1, attempts = attempts + 1, updated_at = 5 WHERE id IN (%s)" % ",".join("?" * 100)
    record = ("UPDATE messages SET state = 2, gateway_id = v.column2, sent_at = 5, updated_at = 6 FROM (VALUES %s) AS v "
              "WHERE messages.id = v.column1 AND messages.state = 1") % ",".join(["(?, ?)"] * 100)
    for k in range(0, len(ids) - 99, 100): db.execute(claim, ids[k:k + 100])
    for k in range(0, len(ids) - 99, 100): db.execute(record, [x for i in ids[k:k + 100] for x in (i, f"g{i}")])
res = {}
for name, body in (("one row per statement", per_row), ("100 rows per statement", bulk)):
    runs = []
    for _ in range(3):
        db, ids = fresh(); runs.append(timed(db, ids[:len(ids) // 100 * 100], body)); db.close()
    res[name] = sorted(runs)[1]
m = dict(re.findall(r"(\w+)=([\d.]+)", line))
loa_us = float(m["claim_us_per_message"]) + float(m["record_us_per_message"])
print(f"{'what (claim + record of one message)':52} {'µs':>8} {'messages/s':>11}")
print(f"{'loa writer, BATCH ' + m['batch'] + ' (store + delivery log)':52} {loa_us:>8.1f} {int(m['messages_per_s']):>11}")
for name, us in res.items():
    print(f"{'sqlite3 floor, ' + name + ' (median of 3)':52} {us:>8.1f} {int(1e6 / us):>11}")
print(f"{'rows the store wrote per message (loa-bench cycle)':52} {float(m['rows_per_message']):>8.3f}")
print(f"({m['messages']} messages through loa; 40,000 through the bare UPDATEs)")
PY
w=${FLOOR_ROWS:-$(sed -E 's/.*rows_per_message=([0-9.]+).*/\1/' <<<"$line")}
python3 - "$line" "$(python3 Tests/Benchmarks/floor.py "$work/d0" "$work" "$w" 100 3)" <<'PY'
import json, re, sys
m = dict(re.findall(r"(\w+)=([\d.]+)", sys.argv[1])); f = json.loads(sys.argv[2])
loa = int(m["messages_per_s"])
print(f"{'sqlite3 floor for %.3f rows per message (%d UPDATEs + %d INSERTs per 100)' % (f['rows_per_recipient'], f['bulk_updates'], f['single_row_writes_per_request']):52} {f['us_per_recipient']:>8.1f} {int(f['recipients_per_s']):>11}")
print(f"{'ratio loa / that floor':52} {loa / f['recipients_per_s']:>8.2f}")
PY
