"""SQLite's floor for the durable writes Loa does per recipient, with no Loa code (Tests/Benchmarks/batch.sh,
store-path.sh).

  floor.py TEMPLATE_DIR WORK_DIR ROWS_PER_RECIPIENT [PER_REQUEST=100] [RUNS=3] [RECIPIENTS=40000]

TEMPLATE_DIR holds a loa.db with a stored campaign (`loa-bench ingest-loa`); each run works on a fresh copy in
WORK_DIR. ROWS_PER_RECIPIENT (w) is what Loa was measured to write per recipient (the store's rows written over the
recipients sent, `loa_store_rows_written_total`). The floor does those writes the cheapest way SQLite allows, per
request of PER_REQUEST recipients: int(w) bare UPDATEs of the request's PER_REQUEST message rows (`id IN (…)`: the
per-recipient writes, such as a claim and an outcome on each row), and round(frac(w) × PER_REQUEST) one-row INSERTs
of a record naming the request's recipients (the per-request and per-transaction writes: a claim record, a shared
outcome, counters, the log's seq). No reads, no log, no Swift, no COMMIT counted (one transaction per run).

A row count does not tell every write apart: Loa's outcome UPDATE also gives each row its own gateway id, an
entry in the `messages_gateway` index that receipts are found by (and `messages_sent_age`'s entry for the `sent`
state). The second figure, `with_gateway_ids`, is the same model with the last per-recipient UPDATE writing those:
state `sent`, `sent_at`, and a distinct gateway id per row through `UPDATE … FROM (VALUES …)` (the one statement
that gives 100 rows 100 different values). Under callgrind that UPDATE is 27,500 SQLite instructions per row
against the bare one's 16,100 (Tests/Benchmarks, h/lean's note of issue 18).
Prints JSON: microseconds per recipient (median of RUNS), recipients per second, and the model used.
"""
import json, shutil, sqlite3, statistics, sys, time


def main():
    template, work, w = sys.argv[1], sys.argv[2], float(sys.argv[3])
    per_request = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    recipients = int(sys.argv[6]) if len(sys.argv) > 6 else 40000
    bulk = int(w + 1e-9)
    singles = round((w - bulk) * per_request)
    bare = measure(template, work, bulk, singles, per_request, runs, recipients, False)
    gateway = measure(template, work, bulk, singles, per_request, runs, recipients, True)
    print(json.dumps({"us_per_recipient": bare, "recipients_per_s": 1e6 / bare, "rows_per_recipient": w, "bulk_updates": bulk,
                      "single_row_writes_per_request": singles, "per_request": per_request,
                      "with_gateway_ids": {"us_per_recipient": gateway, "recipients_per_s": 1e6 / gateway}}))
    shutil.rmtree(f"{work}/floor", ignore_errors=True)


def measure(template, work, bulk, singles, per_request, runs, recipients, gateway_ids):
    """Median microseconds per recipient of RUNS runs, each on a fresh copy of the template."""
    times = []
    for _ in range(runs):
        shutil.rmtree(f"{work}/floor", ignore_errors=True)
        shutil.copytree(template, f"{work}/floor")
        db = sqlite3.connect(f"{work}/floor/loa.db", isolation_level=None)
        for p in ("journal_mode=WAL", "synchronous=NORMAL", "temp_store=MEMORY"):
            db.execute("PRAGMA " + p)
        db.execute("CREATE TABLE IF NOT EXISTS floor_records (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, ids TEXT NOT NULL)")
        ids = [r[0] for r in db.execute("SELECT id FROM messages WHERE state = 0 ORDER BY id LIMIT ?", (recipients,))]
        ids = ids[: len(ids) // per_request * per_request]
        update = "UPDATE messages SET state = ?, updated_at = ? WHERE id IN (%s)" % ",".join("?" * per_request)
        sent = ("UPDATE messages SET state = 2, gateway_id = v.column2, sent_at = ?, updated_at = ? FROM (VALUES %s) AS v "
                "WHERE messages.id = v.column1") % ",".join(["(?, ?)"] * per_request)
        insert = "INSERT INTO floor_records(at, ids) VALUES(?, ?)"
        values = {i: ("g%d" % i) for i in ids}
        db.execute("BEGIN IMMEDIATE")
        t = time.perf_counter()
        for k in range(0, len(ids), per_request):
            chunk = ids[k : k + per_request]
            for j in range(bulk):
                if gateway_ids and j == bulk - 1:
                    db.execute(sent, [k, k] + [x for i in chunk for x in (i, values[i])])
                else:
                    db.execute(update, [j + 1, k] + chunk)
            if singles:
                named = ",".join(map(str, chunk))
                for j in range(singles):
                    db.execute(insert, (k + j, named))
        dt = time.perf_counter() - t
        db.execute("COMMIT")
        db.close()
        times.append(dt / len(ids) * 1e6)
    return statistics.median(times)


if __name__ == "__main__":
    main()
