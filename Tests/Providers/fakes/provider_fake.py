#!/usr/bin/env python3
"""Fakes of six public SMS provider APIs, written from the providers' public documentation (not from Loa's code).

    provider_fake.py --provider twilio|infobip|vonage|esms-cc|esms-bulk|speedsms|jasmin --port PORT --ledger FILE
                     [--lifetime SECONDS] [--rate N --per SECONDS [--burst N]] [--reject NUMBER=CODE ...]
                     [--receipt NUMBER=STATUS ...] [--receipt-delay SECONDS] [--callback-url URL]

Credentials come from the environment, never a flag: FAKE_PROVIDER_CREDENTIALS, in the provider's own form
(twilio "AccountSid:AuthToken", infobip "ApiKey", vonage "api_key:api_secret", esms "ApiKey:SecretKey",
speedsms "token", jasmin "username:password"). Listens on 127.0.0.1 only, sends receipts only to loopback URLs, stops on SIGTERM or after
--lifetime seconds (default 600).

Every behaviour below cites the page it comes from: `# doc: URL (section)`. Where the documentation is silent the
comment says `# not documented:` and what the fake does instead.

Ledger: one JSON line per message the fake accepted ({"provider", "id", "to" (E.164 digits), "text", "parts",
"encoding", "request"}), so a test counts sends per number. GET /fake/stats answers the counters (requests,
throttled, unauthorized, accepted, rejected, callbacks, callback_failures, batch sizes, request times).

Outcomes chosen by the test: --reject 84900000211=21211 makes the fake refuse that number with that documented
code; --receipt 84900000300=undelivered makes its receipt say so (default: delivered). Numbers are E.164 digits.
Jasmin: --reject NUMBER=412 answers 412 "No route found" (any other code: 400); --receipt NUMBER=delivered|expired|
undelivered|rejected gives the level 2 DLR DELIVRD|EXPIRED|UNDELIV|REJECTD; --rate N is the user's http_throughput
(messages a second, as a minimum spacing), answered 403 "User throughput exceeded" beyond it; a DLR counts as
received (stats "callbacks") only when answered "ACK/Jasmin", else "unacknowledged".
"""
import argparse
import base64
import json
import math
import os
import random
import re
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
CREDS = os.environ.get("FAKE_PROVIDER_CREDENTIALS", "")
LOCK = threading.Lock()
STATS = {"requests": 0, "throttled": 0, "unauthorized": 0, "accepted": 0, "rejected": 0, "callbacks": 0,
         "callback_failures": 0, "unacknowledged": 0, "batch_sizes": [], "request_times": [], "polls": 0}
REJECT = {}
RECEIPT = {}
SEQ = [0]
# eSMS: RequestId -> SMSID of the first request that carried it (deduplication), SMSID -> per-number results.
ESMS_REQUESTS = {}
ESMS_RESULTS = {}

GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
           "¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXT = set("^{}\\[~]|€\f")


def next_id(prefix=""):
    with LOCK:
        SEQ[0] += 1
        return f"{prefix}{SEQ[0]:08d}{random.randrange(16**8):08x}"


def digits(number):
    """E.164 digits of a number in any written form (+84…, 84…, 0… as a Vietnamese national number)."""
    d = re.sub(r"\D", "", number or "")
    if d.startswith("0") and len(d) in (10, 11):
        d = "84" + d[1:]
    return d


def national(d):
    return "0" + d[2:] if d.startswith("84") else d


def parts_of(text, unicode):
    """SMS parts: 160/153 GSM-7 septets (escapes count two) or 70/67 UCS-2 units: 3GPP TS 23.040 concatenation."""
    if unicode:
        n = len(text.encode("utf-16-be")) // 2
        return 1 if n <= 70 else math.ceil(n / 67)
    n = sum(2 if c in GSM7_EXT else 1 for c in text)
    return 1 if n <= 160 else math.ceil(n / 153)


def is_gsm7(text):
    return all(c in GSM7 or c in GSM7_EXT for c in text)


def ledger(entry):
    entry["t"] = round(time.time(), 4)
    with LOCK:
        STATS["accepted"] += 1
        with open(ARGS.ledger, "a") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


# MARK: rate limit

class Bucket:
    """--rate N --per S: a token bucket refilled at N/S per second holding at most --burst requests (default N: what
    a provider's "N requests per S seconds" allows). Exceeding it gets the provider's documented throttling answer."""

    def __init__(self, n, per, burst):
        self.n, self.per, self.cap = n, per, burst
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self):
        """None when allowed, else the seconds until the next request is allowed."""
        with LOCK:
            now = time.monotonic()
            self.tokens = min(self.cap, self.tokens + (now - self.at) * self.n / self.per)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return None
            return (1 - self.tokens) * self.per / self.n


BUCKET = None


# MARK: receipts

def callback(url, method="GET", query=None, form=None, body=None, content_type=None, delay=None, expect_body=None):
    """Sends one receipt after the receipt delay, in its own thread, retried up to 5 times (eSMS documents 5
    attempts; for the others the fake's choice). Loopback URLs only."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if not host.startswith("127."):
        return

    def run():
        time.sleep(ARGS.receipt_delay if delay is None else delay)
        target = url
        if query:
            target += ("&" if "?" in url else "?") + urllib.parse.urlencode(query)
        data = None
        headers = {}
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type or "application/json"
        for attempt in range(5):
            try:
                req = urllib.request.Request(target, data=data, method=method, headers=headers)
                with urllib.request.urlopen(req, timeout=10) as r:
                    answer = r.read()
                    if expect_body is not None and answer.decode(errors="replace").strip() != expect_body:
                        with LOCK:
                            STATS["unacknowledged"] += 1
                    elif 200 <= r.status < 300:
                        with LOCK:
                            STATS["callbacks"] += 1
                        return
            except Exception as e:
                # The path only: the query carries the receiver's secret.
                print(f"callback {urllib.parse.urlsplit(target).path} attempt {attempt + 1}: {e}", file=sys.stderr, flush=True)
            time.sleep(0.5 * (attempt + 1))
        with LOCK:
            STATS["callback_failures"] += 1

    threading.Thread(target=run, daemon=True).start()


def final_status(d):
    return RECEIPT.get(d, "delivered")


# MARK: HTTP

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body, headers=None, content_type="application/json"):
        data = body if isinstance(body, bytes) else (json.dumps(body) if not isinstance(body, str) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def basic(self):
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return None
        try:
            return base64.b64decode(h[6:]).decode()
        except Exception:
            return None

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def handle_any(self, method):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/fake/stats":
            with LOCK:
                return self.answer(200, STATS)
        body = self.read_body()
        with LOCK:
            STATS["requests"] += 1
            STATS["request_times"].append(round(time.time(), 3))
        try:
            PROVIDERS[ARGS.provider](self, method, u, body)
        except BrokenPipeError:
            pass

    def throttled(self):
        if BUCKET is None:
            return None
        wait = BUCKET.take()
        if wait is not None:
            with LOCK:
                STATS["throttled"] += 1
        return wait

    def unauthorized(self):
        with LOCK:
            STATS["unauthorized"] += 1


def count_rejected():
    with LOCK:
        STATS["rejected"] += 1


def batch_size(n):
    with LOCK:
        STATS["batch_sizes"].append(n)


# MARK: Twilio

def twilio(h, method, u, body):
    # doc: https://www.twilio.com/docs/messaging/api/message-resource (Create a Message resource):
    # POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form fields To, From, Body, StatusCallback,
    # ValidityPeriod; HTTP Basic AccountSid:AuthToken.
    m = re.fullmatch(r"/2010-04-01/Accounts/([^/]+)/Messages\.json", u.path)
    if method != "POST" or not m:
        return h.answer(404, {"code": 20404, "message": "The requested resource was not found", "status": 404})
    sid = m.group(1)
    # doc: https://www.twilio.com/docs/api/errors/20003 (Authentication Error - invalid username): 401 with code 20003.
    if h.basic() != CREDS or CREDS.split(":")[0] != sid:
        h.unauthorized()
        return h.answer(401, {"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
    # doc: https://www.twilio.com/docs/api/errors/20429 (Too many requests): HTTP 429, code 20429; the request is not
    # processed and is safe to retry. No Retry-After header is documented, so none is sent.
    if h.throttled() is not None:
        return h.answer(429, {"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429})
    f = dict(urllib.parse.parse_qsl(body.decode()))
    to, text = f.get("To", ""), f.get("Body", "")
    batch_size(1)
    d = digits(to)
    # doc: https://www.twilio.com/docs/api/errors/21211 (Invalid 'To' Phone Number) and /21610 (Attempt to send to
    # unsubscribed recipient): HTTP 400 with the error code in the JSON body.
    if d in REJECT or not to.startswith("+"):
        count_rejected()
        code = int(REJECT.get(d, "21211"))
        return h.answer(400, {"code": code, "message": f"The 'To' number {to} is not a valid phone number.", "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": 400})
    # doc: https://www.twilio.com/docs/api/errors/90007 (Invalid validity period value): whole seconds, 1 to 36,000
    # (the older page for 21624 says 14,400); outside it the request is refused.
    vp = f.get("ValidityPeriod")
    if vp is not None and not (vp.isdigit() and 1 <= int(vp) <= 36000):
        count_rejected()
        return h.answer(400, {"code": 21624, "message": "Invalid validity period value", "status": 400})
    msid = "SM" + next_id().ljust(32, "0")[:32]
    unicode = not is_gsm7(text)
    n = parts_of(text, unicode)
    ledger({"provider": "twilio", "id": msid, "to": d, "text": text, "parts": n, "encoding": "ucs2" if unicode else "gsm7",
            "validity": vp, "request": STATS["requests"]})
    # doc: message-resource (Message resource properties): 201 Created with sid, status "queued", num_segments.
    h.answer(201, {"sid": msid, "account_sid": sid, "to": to, "from": f.get("From"), "body": text, "status": "queued",
                   "num_segments": str(n), "error_code": None, "error_message": None, "direction": "outbound-api",
                   "uri": f"/2010-04-01/Accounts/{sid}/Messages/{msid}.json"})
    cb = f.get("StatusCallback")
    if cb:
        # doc: message-resource (StatusCallback; Message status values): a form POST per status change with
        # MessageSid, MessageStatus, ErrorCode (for failed and undelivered), AccountSid, From, To.
        st = final_status(d)
        common = {"AccountSid": sid, "MessageSid": msid, "SmsSid": msid, "From": f.get("From", ""), "To": to, "ApiVersion": "2010-04-01"}
        callback(cb, "POST", form={**common, "MessageStatus": "sent", "SmsStatus": "sent"})
        final = {**common, "MessageStatus": st, "SmsStatus": st}
        if st in ("undelivered", "failed"):
            final["ErrorCode"] = "30003" if st == "undelivered" else "30008"
        callback(cb, "POST", form=final, delay=ARGS.receipt_delay * 2)


# MARK: Infobip

def infobip(h, method, u, body):
    # doc: https://www.infobip.com/docs/api/channels/sms/sms-messaging/outbound-sms/send-sms-messages
    # (Send SMS message, POST /sms/2/text/advanced): JSON messages[], each with destinations[] {to, messageId},
    # from, text, notifyUrl, notifyContentType, validityPeriod (minutes); header Authorization: App <key>.
    if method != "POST" or u.path != "/sms/2/text/advanced":
        return h.answer(404, {"requestError": {"serviceException": {"messageId": "NOT_FOUND", "text": "Not found"}}})
    # doc: https://www.infobip.com/docs/essentials/api-essentials/api-authentication (API key): 401 UNAUTHORIZED.
    if h.headers.get("Authorization") != f"App {CREDS}":
        h.unauthorized()
        return h.answer(401, {"requestError": {"serviceException": {"messageId": "UNAUTHORIZED", "text": "Invalid login details"}}})
    # doc: https://www.infobip.com/docs/developer-resources/api-fundamentals/rate-limits-and-throttling (Throttling):
    # HTTP 429 with errorCode E429; no header is documented.
    if h.throttled() is not None:
        return h.answer(429, {"errorCode": "E429", "description": "Too many requests sent.",
                              "action": "Check request rate limit specified in the API endpoint documentation resource.",
                              "violations": [], "resources": []})
    try:
        req = json.loads(body)
    except ValueError:
        return h.answer(400, {"requestError": {"serviceException": {"messageId": "BAD_REQUEST", "text": "Bad request"}}})
    bulk = "B" + next_id()
    out = []
    n_dest = 0
    reports = {}
    for msg in req.get("messages", []):
        text = msg.get("text", "")
        for dest in msg.get("destinations", []):
            n_dest += 1
            d = digits(dest.get("to", ""))
            mid = dest.get("messageId") or next_id("M")
            # doc: https://www.infobip.com/docs/essentials/api-essentials/response-status-and-error-codes
            # (REJECTED group 5): a refused destination comes back in the 200 answer with status group REJECTED.
            if d in REJECT:
                count_rejected()
                out.append({"to": dest.get("to"), "messageId": mid,
                            "status": {"groupId": 5, "groupName": "REJECTED", "id": 51, "name": REJECT[d], "description": "Destination rejected"}})
                continue
            unicode = not is_gsm7(text)
            # doc: send-sms-messages (validityPeriod): minutes; longer than 48 h is not supported and defaults to 2880.
            vp = msg.get("validityPeriod")
            if isinstance(vp, int) and vp > 2880:
                vp = 2880
            ledger({"provider": "infobip", "id": mid, "to": d, "text": text, "parts": parts_of(text, unicode),
                    "encoding": "ucs2" if unicode else "gsm7", "validity": vp, "request": STATS["requests"]})
            # doc: send-sms-messages (Responses, 200): bulkId and messages[] with messageId and status PENDING.
            out.append({"to": dest.get("to"), "messageId": mid,
                        "status": {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED", "description": "Message sent to next instance"}})
            url = msg.get("notifyUrl")
            if url:
                st = final_status(d)
                group = {"delivered": (3, "DELIVERED", 5, "DELIVERED_TO_HANDSET"), "undeliverable": (2, "UNDELIVERABLE", 9, "UNDELIVERABLE_NOT_DELIVERED"),
                         "expired": (4, "EXPIRED", 15, "EXPIRED_EXPIRED"), "rejected": (5, "REJECTED", 6, "REJECTED_NETWORK")}[st]
                reports.setdefault(url, []).append({
                    "bulkId": bulk, "messageId": mid, "to": dest.get("to"), "sentAt": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime()),
                    "doneAt": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime()), "smsCount": parts_of(text, unicode),
                    "price": {"pricePerMessage": 0.01, "currency": "EUR"},
                    "status": {"groupId": group[0], "groupName": group[1], "id": group[2], "name": group[3], "description": group[1].lower()},
                    "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error", "permanent": False}})
    batch_size(n_dest)
    h.answer(200, {"bulkId": bulk, "messages": out})
    # doc: https://www.infobip.com/docs/api/channels/sms/sms-messaging/logs-and-status-reports/receive-outbound-sms-message-report
    # (Receive outbound SMS message report): a JSON POST to notifyUrl with results[] (up to 100 per request).
    for url, results in reports.items():
        for i in range(0, len(results), 100):
            callback(url, "POST", body={"results": results[i:i + 100]})


# MARK: Vonage

def vonage(h, method, u, body):
    # doc: https://developer.vonage.com/en/api/sms (Send an SMS, POST /sms/json): api_key, api_secret, from, to, text,
    # type (text | unicode), callback, client-ref, status-report-req, ttl (ms); form or JSON body.
    if u.path != "/sms/json":
        return h.answer(404, "")
    ctype = h.headers.get("Content-Type", "")
    if "json" in ctype:
        f = {k: str(v) for k, v in json.loads(body or b"{}").items()}
    else:
        f = dict(urllib.parse.parse_qsl(body.decode() if method == "POST" else u.query))
    # doc: https://developer.vonage.com/messaging/sms/guides/troubleshooting-sms (SMS API error codes): the answer is
    # always HTTP 200; status "4" Invalid Credentials, "1" Throttled (default account limit 30 API requests per
    # second: "What is the Throughput Limit for Outbound SMS?"), "2" Missing Parameters, "6" Invalid Message.
    def error(status, text):
        h.answer(200, {"message-count": "1", "messages": [{"status": status, "error-text": text}]})
    if f"{f.get('api_key')}:{f.get('api_secret')}" != CREDS:
        h.unauthorized()
        return error("4", "Bad Credentials")
    if h.throttled() is not None:
        return error("1", "Throughput Rate Exceeded - please wait [ 1000 ] and retry")
    for p in ("from", "to", "text"):
        if not f.get(p):
            return error("2", f"Missing {p} param")
    batch_size(1)
    d = digits(f["to"])
    if d in REJECT:
        count_rejected()
        return error(REJECT[d], "Invalid Message")
    # doc: https://developer.vonage.com/en/api/sms (ttl): "The duration in milliseconds the delivery of an SMS will be
    # attempted", minimum 20000, maximum 604800000; outside it the request is refused (status "3" Invalid Params,
    # troubleshooting-sms).
    ttl = f.get("ttl")
    if ttl is not None and not (ttl.isdigit() and 20000 <= int(ttl) <= 604800000):
        count_rejected()
        return error("3", "Invalid ttl value")
    text = f["text"]
    typ = f.get("type", "text")
    unicode = typ == "unicode"
    n = parts_of(text, unicode)
    ids = [next_id().upper()[:16] for _ in range(n)]
    # A GSM-7 `type=text` request with characters GSM-7 lacks reaches the handset garbled: recorded as a mismatch.
    ledger({"provider": "vonage", "id": ids[0], "part_ids": ids, "to": d, "text": text, "parts": n, "encoding": "ucs2" if unicode else "gsm7",
            "encoding_mismatch": (not unicode) and not is_gsm7(text), "validity": f.get("ttl"), "client_ref": f.get("client-ref"),
            "request": STATS["requests"]})
    # doc: troubleshooting-sms (SMS API response): messages[] holds one object per part, each with its message-id.
    h.answer(200, {"message-count": str(n), "messages": [
        {"to": d, "message-id": i, "status": "0", "remaining-balance": "15.53590000", "message-price": "0.03330000", "network": "45204"} for i in ids]})
    cb = f.get("callback")
    if cb and f.get("status-report-req", "1") != "0":
        # doc: https://developer.vonage.com/en/messaging/sms/guides/delivery-receipts (Delivery receipts): one receipt
        # per part, by GET (the default) with msisdn, to, network-code, messageId, price, status (delivered, expired,
        # failed, rejected, accepted, buffered, unknown), scts, err-code, client-ref, message-timestamp. The fake adds
        # its query to a callback URL that already has one with "&".
        st = final_status(d)
        for i in ids:
            q = {"msisdn": d, "to": f["from"], "network-code": "45204", "messageId": i, "price": "0.03330000", "status": st,
                 "scts": time.strftime("%y%m%d%H%M", time.gmtime()), "err-code": "0" if st == "delivered" else "1",
                 "api-key": f["api_key"], "message-timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
            if f.get("client-ref"):
                q["client-ref"] = f["client-ref"]
            callback(cb, "GET", query=q)


# MARK: eSMS

def esms_auth(h, req):
    return f"{req.get('ApiKey')}:{req.get('SecretKey')}" == CREDS


def esms(h, method, u, body, bulk):
    # doc: https://developers.esms.vn/en/esms-api/table-of-error-codes (Table of error codes): 100 accepted, 101
    # incorrect ApiKey or SecretKey, 103 balance, 104 brandname, 107 fewer than 30 numbers (advertising), 108 phone
    # number format, 99 number blocked. Every answer is HTTP 200 with CodeResult.
    path = u.path.rstrip("/")
    if method == "GET" and path.endswith("/GetSmsReceiverStatus_get"):
        return esms_receiver_status(h, u)
    if method == "GET" and path.endswith("/GetSendStatus"):
        return esms_send_status(h, u)
    want = "/MainService.svc/json/SendMultipleSMSBrandname_json" if bulk else "/MainService.svc/json/SendMultipleMessage_V4_post_json"
    if method != "POST" or path != want:
        return h.answer(404, "")
    try:
        req = json.loads(body)
    except ValueError:
        return h.answer(200, {"CodeResult": "99", "ErrorMessage": "Invalid request"})
    if not esms_auth(h, req):
        h.unauthorized()
        return h.answer(200, {"CodeResult": "101", "ErrorMessage": "Authorize Failed"})
    # not documented: eSMS states no request rate for these endpoints; --rate throttles with code 99 and the text
    # "Too many requests" only when a test asks for it.
    if h.throttled() is not None:
        return h.answer(200, {"CodeResult": "99", "ErrorMessage": "Too many requests"})
    # doc: send-customer-care (RequestId): "the identification value for the request to prevent the request from
    # duplicated": a RequestId seen before is not sent again; the fake answers the first request's SMSID.
    rid = req.get("RequestId")
    if rid and rid in ESMS_REQUESTS:
        return h.answer(200, {"CodeResult": "100", "CountRegenerate": 0, "SMSID": ESMS_REQUESTS[rid]})
    if bulk:
        # doc: https://developers.esms.vn/en/esms-api/send-sms-api/send-adveritising-message (Send advertising
        # message, POST SendMultipleSMSBrandname_json): Phones[], Content, Brandname, SmsType 1, CallbackUrl,
        # RequestId, SendDate; at least 30 and at most 5000 numbers per request (107 below 30). IsUnicode is not a
        # field of this endpoint: a request that gives it is refused (code 99) so a profile that sends it fails here.
        phones = req.get("Phones") or []
        if "IsUnicode" in req:
            return h.answer(200, {"CodeResult": "99", "ErrorMessage": "IsUnicode is not a parameter of SendMultipleSMSBrandname"})
        if len(phones) < 30:
            batch_size(len(phones))
            return h.answer(200, {"CodeResult": "107", "ErrorMessage": "Each request must have at least 30 numbers"})
    else:
        # doc: https://developers.esms.vn/en/esms-api/send-sms-api/send-otp-customer-care-message (Send OTP/Customer
        # care message, POST SendMultipleMessage_V4_post_json): Phone, Content, Brandname, SmsType 2, IsUnicode,
        # Sandbox, RequestId, CallbackUrl.
        phones = [req.get("Phone", "")]
    batch_size(len(phones))
    text = req.get("Content", "")
    ds = [digits(p) for p in phones]
    bad = [p for p, d in zip(phones, ds) if not re.fullmatch(r"84\d{9}", d)]
    if not bulk and bad:
        count_rejected()
        return h.answer(200, {"CodeResult": "108", "ErrorMessage": "Phone number is not in correct format"})
    if not bulk and ds[0] in REJECT:
        count_rejected()
        return h.answer(200, {"CodeResult": REJECT[ds[0]], "ErrorMessage": "Rejected"})
    smsid = next_id()
    if rid:
        ESMS_REQUESTS[rid] = smsid
    unicode = req.get("IsUnicode") == "1"
    n = parts_of(text, unicode)
    results = {}
    for p, d in zip(phones, ds):
        if d in REJECT or p in bad:
            count_rejected()
            results[d] = False
            continue
        ledger({"provider": ARGS.provider, "id": smsid, "to": d, "text": text, "parts": n, "encoding": "ucs2" if unicode else "gsm7",
                "request_id": rid, "request": STATS["requests"]})
        results[d] = final_status(d) == "delivered"
    ESMS_RESULTS[smsid] = results
    # doc: send-otp-customer-care-message (Response): {"CodeResult": "100", "CountRegenerate": 0, "SMSID": "…"}.
    h.answer(200, {"CodeResult": "100", "CountRegenerate": 0, "SMSID": smsid})
    cb = req.get("CallbackUrl")
    if cb:
        # doc: https://developers.esms.vn/en/esms-api/callback-url (Callback Url): HTTP GET with SMSID, SendFailed,
        # SendStatus (1 pending approval, 2 waiting, 4 rejected, 5 sent, 7 sent to the telco awaiting its report),
        # SendSuccess, TotalPrice, TotalReceiver, TotalSent, RequestId, TypeId; the customer-care callback adds
        # telcoid and phonenumber (its sample: SendFailed=2&SendStatus=5&SendSuccess=0 for a failed 2-part message);
        # the advertising callback is one per request, without a phone number.
        ok = sum(1 for v in results.values() if v)
        failed = len(results) - ok
        common = {"SMSID": smsid, "SendStatus": "5", "TotalPrice": f"{ok * 350:.4f}", "RequestId": rid or ""}
        if bulk:
            callback(cb, "GET", query={**common, "SendFailed": str(failed), "SendSuccess": str(ok), "TotalReceiver": str(len(results)),
                                       "TotalSent": str(len(results)), "TypeId": "1"})
        else:
            d = ds[0]
            ok_parts = n if results.get(d) else 0
            callback(cb, "GET", query={**common, "SendFailed": str(n - ok_parts), "SendSuccess": str(ok_parts), "TotalReceiver": str(n),
                                       "TotalSent": str(n), "TypeId": "2", "telcoid": "1", "phonenumber": national(d), "switchsmsid": ""})


def esms_query_auth(h, q):
    return esms_auth(h, {"ApiKey": q.get("ApiKey"), "SecretKey": q.get("SecretKey")})


def esms_receiver_status(h, u):
    # doc: https://developers.esms.vn/esms-api/ham-truy-xuat-va-dang-ky/ham-kiem-tra-chi-tiet-tung-so-trong-tin-nhan
    # (GetSmsReceiverStatus_get?ApiKey&SecretKey&RefId=SMSID): CodeResult and ReceiverList[] with Phone, IsSent,
    # SentResult, NetworkName, Retry per number; 105 for an unknown SMSID, 101 for wrong keys.
    q = dict(urllib.parse.parse_qsl(u.query))
    with LOCK:
        STATS["polls"] += 1
    if not esms_query_auth(h, q):
        h.unauthorized()
        return h.answer(200, {"CodeResult": "101", "ErrorMessage": "Authorize Failed"})
    results = ESMS_RESULTS.get(q.get("RefId", ""))
    if results is None:
        return h.answer(200, {"CodeResult": "105", "ErrorMessage": "SMSID not found"})
    h.answer(200, {"CodeResult": "100", "ReceiverList": [
        {"IsSent": True, "NetworkName": "Viettel", "Phone": national(d), "Retry": 0, "SentResult": ok} for d, ok in results.items()]})


def esms_send_status(h, u):
    # doc: https://developers.esms.vn/en/esms-api/retrive-and-register-functions/get-sms-by-smsid (GetSendStatus?RefId):
    # CodeResponse, SMSID, SendFailed, SendStatus, SendSuccess, TotalPrice, TotalReceiver, TotalSent.
    q = dict(urllib.parse.parse_qsl(u.query))
    with LOCK:
        STATS["polls"] += 1
    if not esms_query_auth(h, q):
        h.unauthorized()
        return h.answer(200, {"CodeResponse": "101", "SMSID": q.get("RefId", "")})
    results = ESMS_RESULTS.get(q.get("RefId", ""))
    if results is None:
        return h.answer(200, {"CodeResponse": "105", "SMSID": q.get("RefId", "")})
    ok = sum(1 for v in results.values() if v)
    h.answer(200, {"CodeResponse": "100", "SMSID": q["RefId"], "SendFailed": len(results) - ok, "SendStatus": 5, "SendSuccess": ok,
                   "TotalPrice": ok * 350.0, "TotalReceiver": len(results), "TotalSent": len(results)})


# MARK: SpeedSMS

def speedsms(h, method, u, body):
    # doc: https://speedsms.vn/sms-api/ (API URL; Authentication; API gửi SMS): POST /index.php/sms/send, JSON to[],
    # content, sms_type, sender; HTTP Basic with the access token as user name and "x" as password.
    if method != "POST" or u.path != "/index.php/sms/send":
        return h.answer(404, {"status": "error", "code": "404", "message": "not found"})
    # not documented: the answer to a wrong token. The fake answers 401 in the same framework's shape as the
    # documented 429 body ({"name", "message", "code", "status"}).
    if h.basic() != f"{CREDS}:x":
        h.unauthorized()
        return h.answer(401, {"name": "Unauthorized", "message": "Your request was made with invalid credentials.", "code": 0, "status": 401})
    # doc: https://speedsms.vn/sms-api/ (Rate limit): at most 60 requests in 60 seconds; beyond it
    # {"name":"Too Many Requests","message":"Rate limit exceeded.","code":0,"status":429}; read X-Rate-Limit-Reset
    # from the answer's headers (seconds to wait).
    wait = h.throttled()
    if wait is not None:
        return h.answer(429, {"name": "Too Many Requests", "message": "Rate limit exceeded.", "code": 0, "status": 429},
                        headers={"X-Rate-Limit-Reset": str(max(1, math.ceil(wait)))})
    try:
        req = json.loads(body)
    except ValueError:
        return h.answer(200, {"status": "error", "code": "101", "message": "Invalid or missing parameters"})
    to = req.get("to") or []
    text = req.get("content", "")
    batch_size(len(to))
    # doc: https://speedsms.vn/sms-api/ (Error codes): 007 IP locked, 008 account blocked, 009 account not allowed to
    # call the API, 101 invalid or missing parameters, 105 phone number invalid, 110 content encoding not supported,
    # 113 content too long, 300 balance too low, 500 internal error.
    if not to or not text or len(to) > 100:
        return h.answer(200, {"status": "error", "code": "101", "message": "Invalid or missing parameters"})
    ds = [digits(t) for t in to]
    invalid = [t for t, d in zip(to, ds) if d in REJECT or not re.fullmatch(r"84\d{9}", d)]
    codes = {REJECT[d] for d in ds if d in REJECT}
    if len(invalid) == len(to):
        for _ in invalid:
            count_rejected()
        code = codes.pop() if len(codes) == 1 else "105"
        return h.answer(200, {"status": "error", "code": code, "message": "Phone number invalid", "invalidPhone": invalid})
    tran = SEQ[0] + 100000
    next_id()
    unicode = not is_gsm7(text)
    n = parts_of(text, unicode)
    for t, d in zip(to, ds):
        if t in invalid:
            count_rejected()
            continue
        ledger({"provider": "speedsms", "id": str(tran), "to": d, "text": text, "parts": n, "encoding": "ucs2" if unicode else "gsm7",
                "request": STATS["requests"]})
    # doc: https://speedsms.vn/sms-api/ (API gửi SMS, response): {"status": "success", "code": "00", "data":
    # {"tranId", "totalSMS", "totalPrice", "invalidPhone": [...]}}.
    h.answer(200, {"status": "success", "code": "00", "data": {"tranId": tran, "totalSMS": len(to) - len(invalid),
                                                                "totalPrice": 250 * (len(to) - len(invalid)), "invalidPhone": invalid}})
    # The callback URL is set in the account (SpeedSMS dashboard), not per request: here --callback-url.
    # third-party: https://github.com/alexzvn/speedsms-api (webhook payload): POST JSON {"type": "report",
    # "tranId", "phone", "status"}; status 0 delivered, other values not delivered.
    if ARGS.callback_url:
        for t, d in zip(to, ds):
            if t in invalid:
                continue
            callback(ARGS.callback_url, "POST", body={"type": "report", "tranId": tran, "phone": d,
                                                       "status": 0 if final_status(d) == "delivered" else 1})


# MARK: Jasmin

class JasminThroughput:
    """--rate N: the user's http_throughput (messages per second). Jasmin enforces it as a minimum spacing between
    two accepted submits, not a bucket: no burst; the first submit is exempt; a refused one does not move the clock.
    # source: https://github.com/jookies/jasmin jasmin/protocols/http/endpoints/send.py (Send.route_routable, "QoS
    # throttling": qos_delay < 1 / http_throughput raises ThroughputExceededError("User throughput exceeded")).
    """

    def __init__(self, per_second):
        self.spacing = 1.0 / per_second
        self.last = None

    def refuse(self):
        with LOCK:
            now = time.monotonic()
            if self.last is not None and now - self.last < self.spacing:
                return True
            self.last = now
            return False


JASMIN_QOS = None
# doc: https://docs.jasminsms.com/en/latest/apis/http/index.html ("Send SMS", "HTTP API multipart messaging"): a
# content longer than one part is split, at most long_content_max_parts ([http-api] in jasmin.cfg, 5 by default)
# parts; what is beyond them is not sent.
# source: jasmin/protocols/smpp/operations.py (SMPPOperationFactory.SubmitSM: stops at long_content_max_parts).
JASMIN_MAX_PARTS = 5


def jasmin_error(h, status, message):
    # doc: jasmin HTTP API ("Send SMS", HTTP response table): an error is `Error "<message>"` with its HTTP status.
    h.answer(status, f'Error "{message}"', content_type="text/plain")


def jasmin(h, method, u, body):
    # doc: https://docs.jasminsms.com/en/latest/apis/http/index.html ("Send SMS"): GET or POST /send; parameters
    # to, from, coding (0 … 14), username, password, priority, sdt, validity-period (minutes), dlr (yes|no),
    # dlr-url, dlr-level (1 SMS-C, 2 terminal, 3 both), dlr-method (GET|POST), tags, content, hex-content.
    if u.path != "/send" or method not in ("GET", "POST"):
        return h.answer(404, "Not found", content_type="text/plain")
    f = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    if method == "POST":
        f.update(dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)))
    # doc: "Send SMS" (HTTP response table): 400 for a missing or invalid argument, with the argument named.
    for arg in ("username", "password", "to"):
        if arg not in f:
            return jasmin_error(h, 400, f"Mandatory argument [{arg}] is not found.")
    if ("content" in f) == ("hex-content" in f):
        return jasmin_error(h, 400, "content or hex-content not present.")
    if not re.fullmatch(r"\+?\d+", f["to"]):
        return jasmin_error(h, 400, f"Argument [to] has an invalid value: [{f['to']}].")
    dlr = f.get("dlr", "no")
    if dlr == "yes" and ("dlr-url" not in f or f.get("dlr-level") not in ("1", "2", "3")):
        return jasmin_error(h, 400, "Mandatory argument [dlr-url] is not found.")
    if f.get("dlr-method", "GET") not in ("GET", "POST"):
        return jasmin_error(h, 400, f"Argument [dlr-method] has an invalid value: [{f['dlr-method']}].")
    vp = f.get("validity-period")
    if vp is not None and not vp.isdigit():
        return jasmin_error(h, 400, f"Argument [validity-period] has an invalid value: [{vp}].")
    # doc: "Send SMS" (HTTP response table): 403 Authentication failure for username:<username>.
    # source: jasmin/protocols/http/endpoints/send.py (Send.render: AuthenticationError("Authentication failure for
    # username:%s")); errors.py: AuthenticationError is HTTP 403.
    if f"{f['username']}:{f['password']}" != CREDS:
        h.unauthorized()
        return jasmin_error(h, 403, f"Authentication failure for username:{f['username']}")
    d = digits(f["to"])
    # doc: "Send SMS" (HTTP response table): 412 Error "No route found" when no MT route matches the message.
    # source: errors.py RouteNotFoundError (412). The test scripts it by destination: --reject NUMBER=412.
    if REJECT.get(d) == "412":
        count_rejected()
        return jasmin_error(h, 412, "No route found")
    if d in REJECT:
        count_rejected()
        return jasmin_error(h, 400, f"Argument [to] has an invalid value: [{f['to']}].")
    # doc: "Send SMS" (HTTP response table): 403 User throughput exceeded. source: errors.py ThroughputExceededError
    # (403); checked after routing in send.py, so it is answered for a routable message only.
    if JASMIN_QOS is not None and JASMIN_QOS.refuse():
        with LOCK:
            STATS["throttled"] += 1
        return jasmin_error(h, 403, "User throughput exceeded")
    coding = f.get("coding", "0")
    if "hex-content" in f:
        try:
            raw = bytes.fromhex(f["hex-content"])
        except ValueError:
            return jasmin_error(h, 400, "Argument [hex-content] has an invalid value.")
        text = raw.decode("utf-16-be", errors="replace") if coding == "8" else raw.decode("latin-1")
    else:
        text = f["content"]
    unicode = coding == "8"
    n = parts_of(text, unicode)
    msgid = str(uuid.uuid4())
    batch_size(1)
    ledger({"provider": "jasmin", "id": msgid, "to": d, "text": text, "parts": min(n, JASMIN_MAX_PARTS), "parts_cut": max(0, n - JASMIN_MAX_PARTS),
            "encoding": "ucs2" if unicode else "gsm7", "coding": coding, "validity": int(vp) if vp is not None else None,
            "method": method, "dlr_level": f.get("dlr-level"), "request": STATS["requests"]})
    # doc: "Send SMS" (HTTP response table): 200 Success "<message id>", a UUID.
    h.answer(200, f'Success "{msgid}"', content_type="text/plain")
    if dlr != "yes":
        return
    # doc: https://docs.jasminsms.com/en/latest/apis/http/index.html ("Receiving DLR"): Jasmin calls dlr-url with
    # dlr-method; level 1 (SMS-C) fields id, message_status (the submit_sm_resp's command status, ESME_ROK …), level,
    # connector; level 2 (terminal) adds id_smsc, sub, dlvrd, subdate, donedate, err, text and message_status is the
    # receipt's stat (DELIVRD, EXPIRED, UNDELIV, REJECTD, …). The receiver must answer the body "ACK/Jasmin",
    # otherwise Jasmin retries the DLR.
    # not documented: Jasmin's retry timing (dlr_thrower max_retries, retry_delay in jasmin.cfg, 30 s by default);
    # the fake retries 5 times within a few seconds and counts a DLR as delivered only on "ACK/Jasmin".
    level = f.get("dlr-level")
    dmethod = f.get("dlr-method", "GET")
    st = {"delivered": "DELIVRD", "expired": "EXPIRED", "undelivered": "UNDELIV", "rejected": "REJECTD"}.get(final_status(d), "DELIVRD")
    common = {"id": msgid, "connector": "smsc1"}
    send = (lambda fields, delay=None: callback(f["dlr-url"], "POST", form=fields, delay=delay, expect_body="ACK/Jasmin")) if dmethod == "POST" \
        else (lambda fields, delay=None: callback(f["dlr-url"], "GET", query=fields, delay=delay, expect_body="ACK/Jasmin"))
    if level in ("1", "3"):
        send({**common, "message_status": "ESME_ROK", "level": "1"})
    if level in ("2", "3"):
        now = time.strftime("%y%m%d%H%M", time.gmtime())
        send({**common, "id_smsc": f"{random.randrange(16**8):08x}", "message_status": st, "level": "2", "subdate": now, "donedate": now,
              "sub": "001", "dlvrd": "001" if st == "DELIVRD" else "000", "err": "000" if st == "DELIVRD" else "011", "text": text[:20]},
             delay=ARGS.receipt_delay * 2)


PROVIDERS = {
    "twilio": twilio,
    "infobip": infobip,
    "vonage": vonage,
    "esms-cc": lambda h, m, u, b: esms(h, m, u, b, bulk=False),
    "esms-bulk": lambda h, m, u, b: esms(h, m, u, b, bulk=True),
    "speedsms": speedsms,
    "jasmin": jasmin,
}


def main():
    global ARGS, BUCKET, JASMIN_QOS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--provider", required=True, choices=sorted(PROVIDERS))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ledger", required=True)
    p.add_argument("--lifetime", type=float, default=600)
    p.add_argument("--rate", type=float, help="requests allowed per --per seconds (the provider's request limit)")
    p.add_argument("--per", type=float, default=1.0)
    p.add_argument("--burst", type=float, help="requests the bucket holds (default --rate)")
    p.add_argument("--reject", action="append", default=[], metavar="NUMBER=CODE")
    p.add_argument("--receipt", action="append", default=[], metavar="NUMBER=STATUS")
    p.add_argument("--receipt-delay", type=float, default=0.2)
    p.add_argument("--callback-url", help="SpeedSMS: the callback URL set in the account")
    ARGS = p.parse_args()
    for r in ARGS.reject:
        k, v = r.split("=", 1)
        REJECT[digits(k)] = v
    for r in ARGS.receipt:
        k, v = r.split("=", 1)
        RECEIPT[digits(k)] = v
    if ARGS.rate and ARGS.provider == "jasmin":
        JASMIN_QOS = JasminThroughput(ARGS.rate / ARGS.per)
    elif ARGS.rate:
        BUCKET = Bucket(ARGS.rate, ARGS.per, ARGS.burst or ARGS.rate)
    fd = os.open(ARGS.ledger, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    os.close(fd)
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(ARGS.lifetime, stop)
    timer.daemon = True
    timer.start()
    print(f"ready {ARGS.provider} 127.0.0.1:{ARGS.port}", flush=True)
    server.serve_forever()
    os._exit(0)


if __name__ == "__main__":
    main()
