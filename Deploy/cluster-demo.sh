#!/usr/bin/env bash
# Three Loa daemons on one PostgreSQL, in front of one real Kannel (issue 21's set-up): starts a throwaway
# PostgreSQL 15 (Tests/pg.sh), Kannel's bearerbox + smsbox + fake SMSC (the tests' harness), and nodes n1, n2, n3 with
# the configs of Config/cluster/ (data_dir, ports, database and gateway addresses pointed at this demo; secrets as
# systemd credentials in a directory of the demo's own). The sample campaign Config/campaigns/vneid-gopy is submitted
# on n1 and approved on n2; all three nodes send it; the report is read on n3. Then it counts what the fake SMSC got
# per recipient, and what each node's delivery log accepted, and stops everything it started, by pid. Bounded: the
# campaign gets at most 120 s; everything stops by itself.
#
#   Deploy/cluster-demo.sh
# Environment: LOA_BIN=PATH uses that binary (no package check, no build: the integration test's way);
# LOA_DEMO_DIR=DIR keeps the demo's files there (configs, delivery logs, the SMSC's log, report.csv, summary.json)
# instead of a temporary directory removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ -z "${LOA_BIN:-}" ]; then
  Deploy/setup-debian.sh cluster
  echo "== building loa"
  swift build --product loa 2>&1 | grep -E 'error|warning|Build complete' || true
  LOA_BIN="$(swift build --show-bin-path)/loa"
fi
loa=$LOA_BIN
[ -x "$loa" ] || { echo "cluster-demo: no loa binary at $loa" >&2; exit 1; }

keep=${LOA_DEMO_DIR:-}
if [ -n "$keep" ]; then demo=$keep; mkdir -p "$demo"; else demo=$(mktemp -d "${TMPDIR:-/tmp}/loa-cluster-demo.XXXXXX"); fi
demo=$(cd "$demo" && pwd)
# The server's user (not root) must reach its directory: outside $demo, which may be private.
pgdir=$(mktemp -u "${TMPDIR:-/tmp}/loa-pg.XXXXXX")
harness=$root/Tests/IntegrationTests/kannel/kannel-harness.sh
nodes=(n1 n2 n3)
declare -A pids=() ports=()
cleanup() {
  for n in "${nodes[@]}"; do
    p=${pids[$n]:-}
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
  done
  bash "$harness" stop "$demo/kannel" >/dev/null 2>&1 || true
  "$root/Tests/pg.sh" stop "$pgdir" 2>/dev/null || true
  [ -n "$keep" ] || rm -rf "$demo"
}
trap cleanup EXIT

echo "== PostgreSQL 15 on 127.0.0.1 (Tests/pg.sh: initdb in a temporary directory, a non-root server user)"
Tests/pg.sh start "$pgdir"
pg_url=$(Tests/pg.sh url "$pgdir")

echo "== Kannel on 127.0.0.1 (bearerbox, smsbox, a fake SMSC that takes everything and sends receipts)"
eval "$(bash "$harness" start "$demo/kannel" | grep '^KANNEL_')"

# Secrets as systemd would hand them over (LoadCredential=): one 0600 file each in CREDENTIALS_DIRECTORY.
creds=$demo/credentials
(umask 077; mkdir -p "$creds"
 head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$creds/api_token"
 head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$creds/kannel_receipt_secret"
 printf '%s' "$KANNEL_PASSWORD" > "$creds/kannel_password"
 cp "$pgdir/password" "$creds/pg_password")
export CREDENTIALS_DIRECTORY=$creds

# A free port above the kernel's ephemeral range (32768-60999), where no outgoing connection takes it between the pick
# and the daemon's bind, and apart from the test harness's (10000-32699).
free_port() {
  python3 -c '
import random, socket
while True:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(61000, 65535))); print(s.getsockname()[1]); break
    except OSError:
        pass
    finally:
        s.close()'
}
for n in "${nodes[@]}"; do
  ports[$n]=$(free_port)
  sed -e "s#\"data_dir\": \"/var/lib/loa/$n\"#\"data_dir\": \"$demo/$n\"#" \
      -e "s#\"port\": 879[0-9]#\"port\": ${ports[$n]}#" \
      -e "s#\"url\": \"postgresql://loa@127.0.0.1:5432/loa\"#\"url\": \"$pg_url\"#" \
      -e "s#\"url\": \"http://127.0.0.1:13013/cgi-bin/sendsms\"#\"url\": \"$KANNEL_SENDSMS_URL\"#" \
      -e "s#\"username\": \"loa\"#\"username\": \"$KANNEL_USERNAME\"#" \
      "Config/cluster/$n.json" > "$demo/$n.json"
done

campaign=Config/campaigns/vneid-gopy/campaign.json
id=vneid-gopy-2026-11
echo "== loa check (n1)"
"$loa" check --config "$demo/n1.json" "$campaign"

for n in "${nodes[@]}"; do
  echo "== starting node $n on 127.0.0.1:${ports[$n]} (diagnostics: $demo/$n.log)"
  "$loa" daemon --config "$demo/$n.json" 2>"$demo/$n.log" &
  pids[$n]=$!
done
for n in "${nodes[@]}"; do
  up=0
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:${ports[$n]}/healthz" >/dev/null 2>&1 && { up=1; break; }
    kill -0 "${pids[$n]}" 2>/dev/null || break
    sleep 0.1
  done
  [ $up = 1 ] || { echo "cluster-demo: node $n did not start:" >&2; cat "$demo/$n.log" >&2; exit 1; }
done

# Users and tokens live in the database: made through n1, they work on every node.
echo "== loa users add lan --role planner; loa users add minh --role approver (on n1)"
printf 'demo-password-lan\n' | "$loa" users add lan --role planner --config "$demo/n1.json"
printf 'demo-password-minh\n' | "$loa" users add minh --role approver --config "$demo/n1.json"
planner=$("$loa" tokens create --user lan --name demo --config "$demo/n1.json" 2>/dev/null)
approver=$("$loa" tokens create --user minh --name demo --config "$demo/n1.json" 2>/dev/null)

echo "== loa campaign submit $campaign   (as lan, on n1)"
LOA_TOKEN=$planner "$loa" campaign submit "$campaign" --config "$demo/n1.json"
echo "== loa campaign approve $id   (as minh, on n2)"
LOA_TOKEN=$approver "$loa" campaign approve "$id" --comment "samples checked" --config "$demo/n2.json"

echo "== following the campaign on n3 until every recipient is final (at most 120 s)"
done_=0
for i in $(seq 1 240); do
  json=$("$loa" campaign show "$id" --json --config "$demo/n3.json")
  line=$(printf '%s' "$json" | python3 -c 'import json,sys
c = json.load(sys.stdin)
s = c.get("states", {})
print(c["state"], c["final"] >= c["accepted"] and c["state"] == "completed", " ".join(f"{k}={v}" for k, v in sorted(s.items()) if v))')
  [ $((i % 4)) = 1 ] && echo "   $line"
  case "$line" in *" True "*|*" True") done_=1; break ;; esac
  sleep 0.5
done
[ $done_ = 1 ] || { echo "cluster-demo: the campaign did not complete in 120 s" >&2; exit 1; }
"$loa" campaign show "$id" --config "$demo/n3.json"
"$loa" report "$id" --csv "$demo/report.csv" --config "$demo/n3.json" >/dev/null
echo
echo "== the last delivery-log events of n2 (loa tail -n 4)"
"$loa" tail -n 4 --config "$demo/n2.json"
echo

# What the SMSC got: fakesmsc logs each SMS part it receives, a concatenated part with its UDH (05 00 03 ref total
# seq): a recipient's messages are its parts over the parts per message. Sent twice shows as 2.
python3 - "$KANNEL_SMSC_LOG" "$demo/report.csv" "$demo/summary.json" "${nodes[@]/#/$demo/}" <<'PY'
import collections, csv, json, re, sys, urllib.parse
smsc_log, report, out, node_dirs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
parts = collections.Counter()
totals = {}
for line in open(smsc_log, errors="replace"):
    m = re.search(r"Got message \d+: <(\S+) (\S+) (\S+) (\S*)", line)
    if not m:
        continue
    to, kind, payload = m.group(2).lstrip("+"), m.group(3), m.group(4)
    parts[to] += 1
    # A part's UDH is 05 00 03 ref total seq (URL-encoded, + for 0x20): a message of `total` parts.
    udh = urllib.parse.unquote_to_bytes(payload.replace("+", "%20"))
    totals[to] = udh[4] if kind == "udh" and len(udh) >= 6 else 1
messages = {to: parts[to] / totals[to] for to in parts}
rows = list(csv.DictReader(open(report, encoding="utf-8")))
finals = collections.Counter(r["final_state"] for r in rows)
recipients = {r["recipient"].lstrip("+") for r in rows}
per_node = {}
for d in node_dirs:
    n = d.rsplit("/", 1)[1]
    per_node[n] = sum(1 for l in open(f"{d}/delivery.log") if '"event":"accepted"' in l)
twice = sorted(to for to, n in messages.items() if n != 1)
summary = {"recipients": len(rows), "final_states": dict(finals), "smsc_recipients": len(messages),
           "smsc_twice": len(twice), "smsc_not_in_report": len(set(messages) - recipients),
           "accepted_per_node": per_node, "nodes_that_sent": sum(1 for v in per_node.values() if v > 0)}
json.dump(summary, open(out, "w"))
print(f"== {len(rows)} recipients in the report: " + ", ".join(f"{k} {v}" for k, v in sorted(finals.items())))
print(f"== the fake SMSC got messages for {len(messages)} recipients, {len(twice)} of them not exactly once")
print("== accepted per node (delivery logs): " + ", ".join(f"{n} {v}" for n, v in per_node.items()))
PY

echo "== stopping the three nodes (SIGTERM: drain, record, exit 0)"
for n in "${nodes[@]}"; do
  kill -TERM "${pids[$n]}"; rc=0; wait "${pids[$n]}" || rc=$?; echo "   $n exited with $rc"; pids[$n]=""
done
