#!/usr/bin/env python3
"""A scriptable SMPP 3.4 SMSC for Loa's tests: Kannel's `smsc = smpp` connects to it on 127.0.0.1.

Python 3 standard library only (asyncio). It stands for an operator's SMSC as Kannel sees one: binds,
enquire_link, submit_sm with submit_sm_resp, and delivery receipts (deliver_sm, esm_class 0x04) whose outcome
is chosen by the destination number, so a test can drive every receipt Kannel can pass on.

    smpp-smsc.py --port PORT --log FILE [--system-id ID --password PW] [--rules FILE] [--pace N]
                 [--report-delay S] [--max-lifetime S] [--ready-file FILE]

What it does
  * bind_transmitter / bind_receiver / bind_transceiver, checked against --system-id and --password
    (ESME_RINVSYSID 0x0F / ESME_RINVPASWD 0x0E otherwise); enquire_link; unbind; generic_nack
    (ESME_RINVCMDID) for any other PDU before or after a bind.
  * submit_sm: the text is read in the GSM 03.38 default alphabet (data_coding 0, one septet per octet, as
    Kannel sends it), UCS-2 (data_coding 8) or Latin-1 (3); a UDH (esm_class 0x40) with an 8- or 16-bit
    concatenation element makes it one part of a longer message. validity_period is read in SMPP absolute
    (`YYMMDDhhmmsstnn+`/`-`) or relative (`YYMMDDhhmmss000R`) time format. The answer is submit_sm_resp with a
    new message_id of 8 upper-case hex characters.
  * Receipts: deliver_sm with esm_class 0x04, short_message
    `id:XXXXXXXX sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:...`
    and the receipted_message_id (0x001E) and message_state (0x0427) TLVs, sent to the bound receiver or
    transceiver of the same system_id, one per part, --report-delay seconds after the part was accepted
    (a second word of a sequence another --report-delay later).
  * --pace N: at most N submit_sm per second are accepted; the rest wait for their turn and their
    submit_sm_resp is held until then, like a slow link (Kannel stops sending when `max-pending-submits`
    answers are outstanding, so its queue grows in bearerbox, as with a real slow SMSC).
  * Validity: a part whose validity_period has passed when its receipt is due gets stat:EXPIRED
    (message_state 3) instead of its scripted outcome: the network dropped it at validity end.
  * --log FILE (created 0600: it holds phone numbers): one JSON line per submit_sm taken:
    {"t": accepted at (epoch s), "recv": received at, "to", "from", "id", "status" (the resp's
    command_status), "ref", "part", "parts", "coding", "validity" (epoch s or null), "text"} and one per
    receipt sent: {"t", "receipt": id, "to", "stat"}.
  * Bounded: it exits after --max-lifetime seconds (default 600) and on SIGTERM or SIGINT.

Scripting by destination number (the digits of destination_addr)
  The longest rule whose suffix ends the number wins. Built-in rules, by the last digit:
    0 DELIVRD            1 EXPIRED            2 UNDELIV            3 REJECTD           4 DELETED
    5 UNKNOWN            6 ACCEPTD            7 ENROUTE,DELIVRD    8 none (no report)  9 resp=0x45
  --rules FILE adds rules (they win over the built-in ones at equal length), one per line, `#` comments:
    SUFFIX OUTCOME [resp=0xNN[*COUNT]]
  OUTCOME is a comma list of stat words sent in that order (DELIVRD, EXPIRED, UNDELIV, REJECTD, DELETED,
  UNKNOWN, ACCEPTD, ENROUTE), or `none`. `resp=0xNN` answers submit_sm with that command_status and sends no
  report (0x45 ESME_RSUBMITFAIL, 0x58 ESME_RTHROTTLED, ...); with `*COUNT` only the first COUNT submits to
  each number get it, later ones are taken and reported by OUTCOME (a throttled-then-accepted number).
  Examples:  `99 DELIVRD resp=0x58*2`   `8412345 ENROUTE,UNDELIV`
"""

import argparse
import asyncio
import calendar
import json
import os
import re
import signal
import struct
import sys
import time

GENERIC_NACK = 0x80000000
BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER = 0x00000001, 0x00000002, 0x00000009
SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x00000004, 0x00000005, 0x00000006, 0x00000015
RESP = 0x80000000

ESME_ROK, ESME_RINVCMDLEN, ESME_RINVCMDID, ESME_RINVBNDSTS, ESME_RALYBND = 0x00, 0x02, 0x03, 0x04, 0x05
ESME_RINVPASWD, ESME_RINVSYSID, ESME_RSYSERR = 0x0E, 0x0F, 0x08

TLV_RECEIPTED_MESSAGE_ID, TLV_MESSAGE_STATE, TLV_MESSAGE_PAYLOAD = 0x001E, 0x0427, 0x0424
TLV_SAR_REF, TLV_SAR_TOTAL, TLV_SAR_SEQ = 0x020C, 0x020E, 0x020F

# SMPP 3.4 section 5.2.28: message_state values.
STATES = {"ENROUTE": 1, "DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7, "REJECTD": 8}
# The err: field of the receipt text per stat word (network specific in real SMSCs; fixed here).
ERRS = {"DELIVRD": "000", "ENROUTE": "000", "ACCEPTD": "000", "EXPIRED": "001", "DELETED": "002",
        "UNDELIV": "003", "UNKNOWN": "004", "REJECTD": "005"}

BUILTIN_RULES = {"0": (["DELIVRD"], None), "1": (["EXPIRED"], None), "2": (["UNDELIV"], None),
                 "3": (["REJECTD"], None), "4": (["DELETED"], None), "5": (["UNKNOWN"], None),
                 "6": (["ACCEPTD"], None), "7": (["ENROUTE", "DELIVRD"], None), "8": ([], None),
                 "9": ([], (0x45, None))}

# GSM 03.38 default alphabet and its extension table (after 0x1B).
GSM = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
       "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXT = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]",
           0x40: "|", 0x65: "€"}


def gsm_decode(data):
    out, esc = [], False
    for b in data:
        b &= 0x7F
        if esc:
            out.append(GSM_EXT.get(b, " "))
            esc = False
        elif b == 0x1B:
            esc = True
        else:
            out.append(GSM[b])
    return "".join(out)


def decode_text(data, coding):
    if coding == 8:
        return data.decode("utf-16-be", errors="replace")
    if coding in (3, 4):
        return data.decode("latin-1")
    return gsm_decode(data)


def parse_smpp_time(s, now):
    """SMPP 3.4 section 7.1.1: absolute `YYMMDDhhmmsstnnp` (p `+`/`-`: nn quarter hours from UTC) or relative
    `YYMMDDhhmmss000R`; returns epoch seconds, or None for an empty or unreadable value."""
    if not s:
        return None
    m = re.fullmatch(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d)(\d\d)([+\-R])", s)
    if not m:
        return None
    yy, mo, dd, hh, mi, ss, _t, nn, p = m.groups()
    if p == "R":
        # Relative: years and months approximated as 365 and 30 days (SMSCs differ; tests use minutes).
        secs = (int(yy) * 365 + int(mo) * 30 + int(dd)) * 86400 + int(hh) * 3600 + int(mi) * 60 + int(ss)
        return now + secs
    local = calendar.timegm((2000 + int(yy), int(mo), int(dd), int(hh), int(mi), int(ss), 0, 0, 0))
    offset = int(nn) * 15 * 60
    return local - offset if p == "+" else local + offset


def cstr(body, pos, limit=256):
    end = body.index(b"\x00", pos, min(len(body), pos + limit))
    return body[pos:end].decode("latin-1"), end + 1


class Rules:
    def __init__(self, path):
        self.rules = dict(BUILTIN_RULES)
        self.counts = {}
        if path:
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split()
                if len(parts) < 2 or not parts[0].isdigit():
                    sys.exit(f"{path}:{n}: rule: expected `SUFFIX OUTCOME [resp=0xNN[*COUNT]]`")
                words = [] if parts[1].lower() == "none" else parts[1].upper().split(",")
                for w in words:
                    if w not in STATES:
                        sys.exit(f"{path}:{n}: outcome: unknown stat word {w!r} (known: {', '.join(STATES)}, none)")
                resp = None
                for extra in parts[2:]:
                    m = re.fullmatch(r"resp=0x([0-9A-Fa-f]+)(?:\*(\d+))?", extra)
                    if not m:
                        sys.exit(f"{path}:{n}: {extra}: expected resp=0xNN or resp=0xNN*COUNT")
                    resp = (int(m.group(1), 16), int(m.group(2)) if m.group(2) else None)
                self.rules[parts[0]] = (words, resp)

    def decide(self, number):
        """(stat words, command_status) for one submit_sm to `number`."""
        digits = re.sub(r"\D", "", number)
        best = None
        for suffix in self.rules:
            if digits.endswith(suffix) and (best is None or len(suffix) > len(best)):
                best = suffix
        words, resp = self.rules.get(best, (["DELIVRD"], None))
        if resp is None:
            return words, ESME_ROK
        status, count = resp
        if count is None:
            return [], status
        seen = self.counts.get(digits, 0)
        self.counts[digits] = seen + 1
        return (words, ESME_ROK) if seen >= count else ([], status)


class SMSC:
    def __init__(self, args):
        self.args = args
        self.rules = Rules(args.rules)
        self.next_slot = 0.0
        self.sessions = set()
        self.serial = int(time.time() * 1000) & 0xFFFFFF
        fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        self.log_file = os.fdopen(fd, "a", buffering=1, encoding="utf-8")
        self.tasks = set()

    def log(self, record):
        self.log_file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def new_id(self):
        self.serial = (self.serial + 1) & 0xFFFFFFFF
        return "%08X" % self.serial

    async def slot(self):
        """Waits for the next of --pace slots per second (none without --pace)."""
        if not self.args.pace:
            return
        now = time.monotonic()
        at = max(now, self.next_slot)
        self.next_slot = at + 1.0 / self.args.pace
        if at > now:
            await asyncio.sleep(at - now)

    def receiver_for(self, system_id):
        for s in self.sessions:
            if s.bound in ("receiver", "transceiver") and s.system_id == system_id and not s.closed:
                return s
        return None

    def spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)


class Session:
    def __init__(self, smsc, reader, writer):
        self.smsc, self.reader, self.writer = smsc, reader, writer
        self.bound = None
        self.system_id = None
        self.closed = False
        self.seq = 0

    def send(self, command_id, status, seq, body=b""):
        if self.closed:
            return
        self.writer.write(struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body)

    def next_seq(self):
        self.seq = self.seq % 0x7FFFFFFF + 1
        return self.seq

    async def run(self):
        try:
            while True:
                head = await self.reader.readexactly(16)
                length, command_id, status, seq = struct.unpack(">IIII", head)
                if length < 16 or length > 65536:
                    self.send(GENERIC_NACK, ESME_RINVCMDLEN, seq)
                    break
                body = await self.reader.readexactly(length - 16)
                if not self.handle(command_id, status, seq, body):
                    break
                await self.writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed = True
            self.smsc.sessions.discard(self)
            try:
                self.writer.close()
            except Exception:
                pass

    def handle(self, command_id, status, seq, body):
        """Answers one PDU; False ends the session."""
        if command_id in (BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER):
            kind = {BIND_RECEIVER: "receiver", BIND_TRANSMITTER: "transmitter", BIND_TRANSCEIVER: "transceiver"}[command_id]
            try:
                system_id, p = cstr(body, 0, 16)
                password, p = cstr(body, p, 9)
            except ValueError:
                self.send(command_id | RESP, ESME_RINVCMDLEN, seq)
                return True
            if self.bound:
                self.send(command_id | RESP, ESME_RALYBND, seq)
            elif system_id != self.smsc.args.system_id:
                self.send(command_id | RESP, ESME_RINVSYSID, seq)
            elif password != self.smsc.args.password:
                self.send(command_id | RESP, ESME_RINVPASWD, seq)
            else:
                self.bound, self.system_id = kind, system_id
                # sc_interface_version TLV: SMPP 3.4.
                self.send(command_id | RESP, ESME_ROK, seq, b"loa-smsc\x00" + struct.pack(">HHB", 0x0210, 1, 0x34))
            return True
        if command_id == ENQUIRE_LINK:
            self.send(ENQUIRE_LINK | RESP, ESME_ROK, seq)
            return True
        if command_id == UNBIND:
            self.send(UNBIND | RESP, ESME_ROK, seq)
            return False
        if command_id & RESP:
            return True  # deliver_sm_resp, enquire_link_resp, generic_nack: nothing to answer
        if command_id == SUBMIT_SM:
            if self.bound not in ("transmitter", "transceiver"):
                self.send(SUBMIT_SM | RESP, ESME_RINVBNDSTS, seq)
                return True
            self.smsc.spawn(self.submit(seq, body, time.time()))
            return True
        self.send(GENERIC_NACK, ESME_RINVCMDID, seq)
        return True

    async def submit(self, seq, body, received):
        smsc = self.smsc
        try:
            p = 0
            _service_type, p = cstr(body, p, 6)
            p += 2
            source, p = cstr(body, p, 21)
            p += 2
            dest, p = cstr(body, p, 21)
            esm_class, _pid, _prio = body[p], body[p + 1], body[p + 2]
            p += 3
            _schedule, p = cstr(body, p, 17)
            validity_text, p = cstr(body, p, 17)
            registered, _replace, coding, _default_id, sm_length = body[p], body[p + 1], body[p + 2], body[p + 3], body[p + 4]
            p += 5
            sm = body[p:p + sm_length]
            p += sm_length
            tlvs = {}
            while p + 4 <= len(body):
                tag, tlen = struct.unpack(">HH", body[p:p + 4])
                tlvs[tag] = body[p + 4:p + 4 + tlen]
                p += 4 + tlen
        except (ValueError, IndexError):
            self.send(SUBMIT_SM | RESP, ESME_RINVCMDLEN, seq)
            return
        if not sm and TLV_MESSAGE_PAYLOAD in tlvs:
            sm = tlvs[TLV_MESSAGE_PAYLOAD]
        ref, part, parts = None, 1, 1
        if esm_class & 0x40 and sm:
            udhl = sm[0]
            udh, sm = sm[1:1 + udhl], sm[1 + udhl:]
            i = 0
            while i + 2 <= len(udh):
                iei, iel = udh[i], udh[i + 1]
                v = udh[i + 2:i + 2 + iel]
                if iei == 0x00 and iel == 3:
                    ref, parts, part = v[0], v[1], v[2]
                elif iei == 0x08 and iel == 4:
                    ref, parts, part = (v[0] << 8) | v[1], v[2], v[3]
                i += 2 + iel
        elif TLV_SAR_REF in tlvs:
            ref = int.from_bytes(tlvs[TLV_SAR_REF], "big")
            parts = int.from_bytes(tlvs.get(TLV_SAR_TOTAL, b"\x01"), "big")
            part = int.from_bytes(tlvs.get(TLV_SAR_SEQ, b"\x01"), "big")
        text = decode_text(sm, coding & 0x0F if coding & 0xF0 == 0 else coding)
        await smsc.slot()
        accepted = time.time()
        validity = parse_smpp_time(validity_text, received)
        words, status = smsc.rules.decide(dest)
        msg_id = smsc.new_id() if status == ESME_ROK else ""
        smsc.log({"t": round(accepted, 3), "recv": round(received, 3), "to": dest, "from": source, "id": msg_id,
                  "status": status, "ref": ref, "part": part, "parts": parts, "coding": coding,
                  "validity": validity, "validity_text": validity_text, "registered": registered, "text": text})
        self.send(SUBMIT_SM | RESP, status, seq, msg_id.encode() + b"\x00" if status == ESME_ROK else b"\x00")
        try:
            await self.writer.drain()
        except ConnectionError:
            return
        if status != ESME_ROK or not words or not registered & 0x03:
            return
        smsc.spawn(self.report(msg_id, source, dest, text, words, accepted, validity))

    async def report(self, msg_id, source, dest, text, words, accepted, validity):
        smsc = self.smsc
        for i, word in enumerate(words):
            await asyncio.sleep(smsc.args.report_delay)
            now = time.time()
            if validity is not None and now > validity and word not in ("ENROUTE", "ACCEPTD"):
                word = "EXPIRED"
            target = smsc.receiver_for(self.system_id)
            if target is None:
                return  # no receiver bound: a real SMSC would keep it; the tests see no receipt
            dlvrd = "001" if word == "DELIVRD" else "000"
            sample = "".join(c if 32 <= ord(c) < 127 else "?" for c in text[:20])
            receipt = (f"id:{msg_id} sub:001 dlvrd:{dlvrd} submit date:{time.strftime('%y%m%d%H%M', time.gmtime(accepted))} "
                       f"done date:{time.strftime('%y%m%d%H%M', time.gmtime(now))} stat:{word} err:{ERRS[word]} text:{sample}").encode()
            # deliver_sm: the receipt goes from the handset (the message's destination) to the ESME (its source).
            body = (b"\x00" + bytes([1, 1]) + dest.encode() + b"\x00" + bytes([1, 1]) + source.encode() + b"\x00"
                    + bytes([0x04, 0, 0]) + b"\x00" + b"\x00" + bytes([0, 0, 0, 0, len(receipt)]) + receipt
                    + struct.pack(">HH", TLV_RECEIPTED_MESSAGE_ID, len(msg_id) + 1) + msg_id.encode() + b"\x00"
                    + struct.pack(">HHB", TLV_MESSAGE_STATE, 1, STATES[word]))
            target.send(DELIVER_SM, ESME_ROK, target.next_seq(), body)
            smsc.log({"t": round(now, 3), "receipt": msg_id, "to": dest, "stat": word})
            if word == "EXPIRED" and i < len(words) - 1:
                return


async def main():
    ap = argparse.ArgumentParser(description="A scriptable SMPP 3.4 SMSC for tests (see the file's header).")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--system-id", default="loa")
    ap.add_argument("--password", default="loa-smpp")
    ap.add_argument("--rules")
    ap.add_argument("--pace", type=float, default=0, help="at most N submit_sm accepted per second (0: no limit)")
    ap.add_argument("--report-delay", type=float, default=0.3, help="seconds between acceptance and each receipt")
    ap.add_argument("--max-lifetime", type=float, default=600)
    ap.add_argument("--ready-file")
    args = ap.parse_args()
    if args.pace < 0 or not 0 < args.max_lifetime <= 86400 or args.report_delay < 0:
        sys.exit("--pace must be >= 0, --max-lifetime 0-86400, --report-delay >= 0")
    smsc = SMSC(args)

    async def serve(reader, writer):
        s = Session(smsc, reader, writer)
        smsc.sessions.add(s)
        await s.run()

    server = await asyncio.start_server(serve, "127.0.0.1", args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write(str(server.sockets[0].getsockname()[1]))
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.max_lifetime)
    except asyncio.TimeoutError:
        pass
    server.close()
    for s in list(smsc.sessions):
        s.closed = True
        s.writer.close()
    for t in list(smsc.tasks):
        t.cancel()
    smsc.log_file.close()


if __name__ == "__main__":
    asyncio.run(main())
