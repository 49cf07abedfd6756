#!/usr/bin/env bash
# The main job on the embedded defaults: builds loa, starts a real Kannel (bearerbox + smsbox + its fake
# SMSC) on 127.0.0.1, starts `loa daemon` with Config/loa.json (data_dir and gateway address pointed at
# this demo), submits the sample campaign Config/campaigns/vneid-gopy, and shows it go out and its
# delivery receipts come back. Everything runs on loopback and stops by itself at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
Deploy/setup-debian.sh demo
echo "== building loa"
swift build --product loa 2>&1 | grep -E 'error|warning|Compiling loa|Build complete' || true
loa="$(swift build --show-bin-path)/loa"
[ -x "$loa" ] || { echo "demo: build failed" >&2; exit 1; }

demo=$root/.build/demo
rm -rf "$demo" && mkdir -p "$demo"
harness=$root/Tests/IntegrationTests/kannel/kannel-harness.sh
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  bash "$harness" stop "$demo/kannel" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== starting Kannel on 127.0.0.1 (fake SMSC that delivers everything and sends receipts)"
eval "$(bash "$harness" start "$demo/kannel" | grep '^KANNEL_')"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s#\"data_dir\": \"/var/lib/loa\"#\"data_dir\": \"$demo/data\"#" \
    -e "s#\"port\": 8780#\"port\": $port#" \
    -e "s#\"public_url\": \"http://127.0.0.1:8780\"#\"public_url\": \"http://127.0.0.1:$port\"#" \
    -e "s#\"url\": \"http://127.0.0.1:13013/cgi-bin/sendsms\"#\"url\": \"$KANNEL_SENDSMS_URL\"#" \
    -e "s#\"username\": \"loa\"#\"username\": \"$KANNEL_USERNAME\"#" \
    Config/loa.json > "$demo/loa.json"
export LOA_CONFIG=$demo/loa.json
export LOA_API_TOKEN=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
export LOA_KANNEL_PASSWORD=$KANNEL_PASSWORD
export LOA_KANNEL_RECEIPT_SECRET=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')

campaign=Config/campaigns/vneid-gopy/campaign.json
echo "== loa check"
"$loa" check --config "$LOA_CONFIG" "$campaign"

echo "== starting loa daemon on 127.0.0.1:$port (diagnostics: $demo/daemon.log)"
"$loa" daemon --config "$LOA_CONFIG" 2>"$demo/daemon.log" &
daemon_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$demo/daemon.log"; exit 1; }
  sleep 0.1
done

# Two-person approval is on (Loa's default): the admin (api_token) adds a planner and an approver, the planner
# submits, and the approver, a second person, approves. Each works with their own token (LOA_TOKEN).
echo "== loa users add lan --role planner; loa users add minh --role approver; a token for each"
printf 'demo-password-lan\n' | "$loa" users add lan --role planner
printf 'demo-password-minh\n' | "$loa" users add minh --role approver
planner=$("$loa" tokens create --user lan --name demo 2>/dev/null)
approver=$("$loa" tokens create --user minh --name demo 2>/dev/null)

echo "== loa campaign submit $campaign   (as lan, the planner)"
LOA_TOKEN=$planner "$loa" campaign submit "$campaign"

id=vneid-gopy-2026-11
echo "== loa campaign approve $id   (as minh, the approver; until then nothing is sent)"
LOA_TOKEN=$approver "$loa" campaign approve "$id" --comment "samples checked"
echo "== waiting for every recipient to reach a final state (at most 120 s)"
for _ in $(seq 1 120); do
  json=$("$loa" campaign show "$id" --json)
  final=$(printf '%s' "$json" | python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["final"] >= c["accepted"] and c["state"] == "completed")')
  [ "$final" = True ] && break
  sleep 1
done
"$loa" campaign show "$id"
echo
echo "== the last delivery-log events (loa tail -n 8)"
"$loa" tail -n 8
echo
received=$(grep -c 'Got message' "$KANNEL_SMSC_LOG" || true)
echo "== Kannel's fake SMSC received $received SMS parts; the delivery log has $(grep -c '"event":"receipt"' "$demo/data/delivery.log") receipt events (final and intermediate)"
echo "== the audit trail (loa audit, as the approver)"
LOA_TOKEN=$approver "$loa" audit --campaign "$id"
echo
echo "== stopping (SIGTERM: drain, record, exit 0)"
kill -TERM "$daemon_pid"; wait "$daemon_pid"; echo "loa daemon exited with $?"; daemon_pid=""
