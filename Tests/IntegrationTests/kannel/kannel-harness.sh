#!/usr/bin/env bash
# A real Kannel on 127.0.0.1 for Loa's integration tests and demo: bearerbox + smsbox + an SMSC, with free
# ports chosen by the kernel. Only processes started here are stopped, by pid.
#
#   kannel-harness.sh install      install the kannel package when missing (apt-get)
#   kannel-harness.sh start DIR [--smpp [--pace N] [--throughput N] [--rules FILE] [--report-delay S]]
#                                  write DIR/kannel.conf, start the three processes, wait until the SMSC
#                                  link is up, print KANNEL_* variables (shell-sourceable) on stdout
#   kannel-harness.sh stop DIR     stop what `start DIR` started (TERM, then KILL after 10 s)
#
# The SMSC is Kannel's fakesmsc by default: what it received is in DIR/smsc-received.log (see FORMAT at the
# end of this file). With --smpp it is smpp-smsc.py (next to this file), a scriptable SMPP 3.4 SMSC, and
# bearerbox has `smsc = smpp` bound to it in transceiver mode:
#   --pace N          the SMSC accepts at most N submit_sm per second and holds the rest (a slow link)
#   --throughput N    Kannel's own `throughput` for the link (messages per second bearerbox sends). Kannel
#                     1.4.5 counts it with a load average over a short window and sends in bursts, and it
#                     paces only what bearerbox sends over SMPP, not what smsbox takes: a run of issue 17 saw
#                     about 25/s pass a lower cap. Do not rely on it for a deadline: smsbox keeps accepting
#                     and bearerbox queues. --pace (the SMSC's own answers) is the slow link the tests use.
#   --rules FILE      the SMSC's outcome rules by destination number (see smpp-smsc.py's header)
#   --report-delay S  seconds from acceptance to each receipt (default 0.3)
# Kannel keeps at most `max-pending-submits` (10) submit_sm unanswered, so with --pace its queue grows in
# bearerbox, as in front of a real slow SMSC. DIR/smsc-submits.log is the SMSC's JSON-lines log of every
# submit_sm it took and every receipt it sent (0600: it holds phone numbers).
set -euo pipefail

cmd=${1:-}
SMPP_SMSC=$(cd "$(dirname "$0")" && pwd)/smpp-smsc.py
FAKESMSC=/usr/lib/kannel/test/fakesmsc

# A free port below the kernel's ephemeral range (32768-60999), where no outgoing connection takes it between the
# pick and Kannel's bind; 10000-14999, apart from the Swift harness's ports (Support.swift, freePort).
free_port() {
  python3 -c '
import random, socket
while True:
    p = random.randrange(10000, 15000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()'
}

case "$cmd" in
  install)
    if [ ! -x /usr/sbin/bearerbox ] || [ ! -x "$FAKESMSC" ]; then
      "$(dirname "$0")/../../../Deploy/setup-debian.sh" test
    fi
    ;;
  start)
    dir=${2:?usage: kannel-harness.sh start DIR}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    shift 2
    smpp=0; pace=0; throughput=""; rules=""; report_delay=0.3
    while [ $# -gt 0 ]; do
      case "$1" in
        --smpp) smpp=1 ;;
        --pace) pace=${2:?--pace N}; shift ;;
        --throughput) throughput=${2:?--throughput N}; shift ;;
        --rules) rules=${2:?--rules FILE}; shift ;;
        --report-delay) report_delay=${2:?--report-delay S}; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
      esac
      shift
    done
    [ -x /usr/sbin/bearerbox ] || { echo "kannel is not installed: run kannel-harness.sh install" >&2; exit 1; }
    admin=$(free_port); smsbox=$(free_port); sendsms=$(free_port); fake=$(free_port)
    password=${KANNEL_PASSWORD:-loa-test}
    core_extra=""
    if [ $smpp = 1 ]; then
      # A submit the SMSC refuses for now (ESME_RTHROTTLED 0x58, ESME_RMSGQFUL) goes back to bearerbox's queue and
      # is resent after sms-resend-freq seconds (60 by default: longer than a test).
      core_extra="sms-resend-freq = 2"
      smsc_id=smpp
      # transceiver-mode: one bind for submits and receipts. msg-id-type is left unset: Kannel then keeps
      # the SMSC's ids as strings, and the submit_sm_resp id and the receipt's id match as given.
      smsc_group="group = smsc
smsc = smpp
smsc-id = smpp
host = 127.0.0.1
port = $fake
transceiver-mode = true
smsc-username = loa
smsc-password = loa-smpp
system-type = \"\"
enquire-link-interval = 30
max-pending-submits = 10
reconnect-delay = 1
wait-ack = 60
wait-ack-expire = 0x02${throughput:+
throughput = $throughput}"
    else
      smsc_id=fake
      smsc_group="group = smsc
smsc = fake
smsc-id = fake
host = 127.0.0.1
port = $fake
connect-allow-ip = \"127.0.0.1\""
    fi
    cat > "$dir/kannel.conf" <<CONF
group = core
admin-port = $admin
admin-interface = 127.0.0.1
admin-password = loa-admin
status-password = loa-admin
admin-allow-ip = "127.0.0.1"
smsbox-port = $smsbox
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
box-deny-ip = "*.*.*.*"
log-file = "$dir/bearerbox.log"
log-level = 1
access-log = "$dir/bearerbox-access.log"
dlr-storage = internal
$core_extra

$smsc_group

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = $sendsms
sendsms-interface = 127.0.0.1
log-file = "$dir/smsbox.log"
log-level = 1
access-log = "$dir/smsbox-access.log"
http-request-retry = 5
http-queue-delay = 1

group = sendsms-user
username = loa
password = "$password"
max-messages = 10
concatenation = true

group = sms-service
keyword = default
text = "Loa test: no MO service"
CONF
    /usr/sbin/bearerbox -v 2 "$dir/kannel.conf" > "$dir/bearerbox.out" 2>&1 &
    echo $! > "$dir/bearerbox.pid"
    # bearerbox must listen before the boxes connect.
    for _ in $(seq 1 100); do
      (exec 3<>/dev/tcp/127.0.0.1/$smsbox) 2>/dev/null && break
      kill -0 "$(cat "$dir/bearerbox.pid")" 2>/dev/null || { echo "bearerbox exited:" >&2; tail -20 "$dir/bearerbox.out" "$dir/bearerbox.log" >&2; exit 1; }
      sleep 0.1
    done
    /usr/sbin/smsbox -v 2 "$dir/kannel.conf" > "$dir/smsbox.out" 2>&1 &
    echo $! > "$dir/smsbox.pid"
    if [ $smpp = 1 ]; then
      # Bounded: it exits by itself after an hour even if nobody stops it.
      python3 "$SMPP_SMSC" --port "$fake" --log "$dir/smsc-submits.log" --pace "$pace" --report-delay "$report_delay" \
        --max-lifetime 3600 ${rules:+--rules "$rules"} > "$dir/smpp-smsc.out" 2>&1 &
      echo $! > "$dir/smpp-smsc.pid"
    else
      # -m 0: generate no MO traffic; it only answers what bearerbox sends it.
      # It reports each MT part it receives on stderr: that stream is smsc-received.log (format below).
      "$FAKESMSC" -H 127.0.0.1 -r "$fake" -m 0 "100 200 text nop" > "$dir/fakesmsc.out" 2> "$dir/smsc-received.log" &
      echo $! > "$dir/fakesmsc.pid"
    fi
    # Up means: the fake SMSC link is online and smsbox answers sendsms.
    up=0
    for _ in $(seq 1 300); do
      if curl -fsS "http://127.0.0.1:$admin/status.txt?password=loa-admin" 2>/dev/null | grep -q "$smsc_id.*online" \
         && curl -sS -o /dev/null "http://127.0.0.1:$sendsms/" 2>/dev/null; then up=1; break; fi
      sleep 0.1
    done
    if [ $up = 0 ]; then
      echo "kannel did not come up in 30 s" >&2
      tail -n 20 "$dir"/*.log "$dir"/*.out >&2 || true
      "$0" stop "$dir"
      exit 1
    fi
    echo "KANNEL_SENDSMS_URL=http://127.0.0.1:$sendsms/cgi-bin/sendsms"
    echo "KANNEL_USERNAME=loa"
    echo "KANNEL_PASSWORD=$password"
    echo "KANNEL_ADMIN_URL=http://127.0.0.1:$admin"
    if [ $smpp = 1 ]; then
      echo "KANNEL_SMSC_LOG=$dir/smsc-submits.log"
    else
      echo "KANNEL_SMSC_LOG=$dir/smsc-received.log"
    fi
    ;;
  stop)
    dir=${2:?usage: kannel-harness.sh stop DIR}
    pids=()
    for name in fakesmsc smpp-smsc smsbox bearerbox; do
      f="$dir/$name.pid"
      [ -f "$f" ] || continue
      pid=$(cat "$f")
      # Only our own process: the pid must still run this binary with our config or log.
      if kill -0 "$pid" 2>/dev/null && grep -q "$name" "/proc/$pid/cmdline" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
      fi
      rm -f "$f"
    done
    for _ in $(seq 1 50); do
      alive=0
      for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then alive=1; fi
      done
      [ $alive = 0 ] && break
      sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    ;;
  *)
    echo "usage: kannel-harness.sh install | start DIR | stop DIR" >&2
    exit 2
    ;;
esac
exit 0

# FORMAT
#
# Observed with Kannel 1.4.5 on Debian 12 (fakesmsc's stderr, one line per SMS *part* received):
#   ... DEBUG: Got message 1: <UBND +84912345678 text Hello world>
#   ... DEBUG: Got message 2: <UBND 84912345679 ucs-2 %00G%00%F3%00p%00+%00%FD...>
#   ... DEBUG: Got message 6: <UBND 84912345111 udh %05%00%03%03%02%01 data %00K%00%ED%00n...>
# Fields: sender, receiver (as given to sendsms; a leading + is kept), type, then the payload:
#   text   plain text as Kannel holds it (a GSM-7 message in one part)
#   ucs-2  the UCS-2 (UTF-16BE) bytes, URL-encoded (+ is a 0x20 byte): a Unicode message in one part
#   udh    a concatenated part: the URL-encoded UDH (05 00 03 ref total seq), the word "data", then the
#          part's bytes URL-encoded (UTF-16BE for coding=2, the text's bytes for GSM-7). Parts of one message
#          share ref; reassemble by (receiver, ref) in seq order.
# Receipts: for every sendsms with dlr-mask=31 the fake SMSC triggers two dlr-url calls, %d=8 (SMSC
# accepted; %A is "ACK/") and %d=1 (delivered; %F carries an id), in either order, once per message (not
# per part). A dlr-url answered with anything but 2xx is retried (http-request-retry = 5 above).
# sendsms answers: 202 "0: Accepted for delivery"; 403 "Authorization failed for sendsms";
# 400 "Missing receiver number, rejected".
