#!/usr/bin/env python3
"""A minimal provider with a send API, callbacks and a status API, for Loa's generic-adapter tests (issue 17).

Not a copy of any one provider: the smallest shape that exercises what the generic adapter reads.
  POST /send        JSON {"callback": URL, "phones": ["09…", …], "text": …}: answers
                    {"code": "100", "request_id": "R<n>", "results": [{"phone": "<national>", "msg_id": "R<n>-<k>"}, …]}
  GET  /status      ?ids=a,b,c  → {"items": [{"msg_id": …, "stat": …}, …]}: the first query of an id answers
                    ENROUTE, later ones DELIVRD (numbers ending in 9: UNDELIV)
  GET  /request-status ?request=R<n> → {"items": [{"request_id": …, "Phone": "<national>", "SendStatus": "5"|"4"}]}
  GET  /fake/stats  counts: sends, status requests and their times, the most ids in one, the ids per request
Modes (--mode): "appended" calls back GET <callback>?msg_id=…&stat=DELIVRD for every number (the provider appends
its own query to a URL that has one); "poll" never calls back; "aggregate" posts one JSON callback per request
{"SMSID": "R<n>", "SendSuccess": n, "SendFailed": m}, eSMS advertising style, with no number in it.
Listens on 127.0.0.1 only; writes its port to --port-file; exits after --exit-after seconds.
"""
import argparse, json, threading, time, urllib.request, urllib.parse
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--mode", choices=["appended", "poll", "aggregate"], required=True)
ap.add_argument("--exit-after", type=float, default=300)
args = ap.parse_args()

lock = threading.Lock()
state = {"sends": 0, "status_requests": 0, "status_times": [], "max_ids": 0, "ids_per_request": [], "callbacks": [], "callback_answers": []}
queried = {}      # msg_id -> times asked
requests = {}     # request id -> [national numbers]
ids = {}          # msg_id -> national number


def final_for(national):
    return "UNDELIV" if national.endswith("9") else "DELIVRD"


def call(url, data=None):
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception as e:
        return str(e)


def callbacks(callback, rid, phones, mine):
    if args.mode == "appended":
        for national, msg_id in mine:
            # The provider appends "?" + its query whatever the URL already holds.
            status = call(callback + "?" + urllib.parse.urlencode({"msg_id": msg_id, "stat": final_for(national)}))
            with lock:
                state["callback_answers"].append(status)
    elif args.mode == "aggregate":
        failed = sum(1 for p in phones if p.endswith("9"))
        body = json.dumps({"SMSID": rid, "SendSuccess": len(phones) - failed, "SendFailed": failed}).encode()
        status = call(callback, body)
        with lock:
            state["callback_answers"].append(status)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def answer(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path != "/send":
            return self.answer(404, {"error": "no such path"})
        doc = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        phones = doc["phones"]
        with lock:
            state["sends"] += 1
            rid = "R%d" % state["sends"]
            mine = [(p, "%s-%d" % (rid, k)) for k, p in enumerate(phones)]
            requests[rid] = list(phones)
            for p, m in mine:
                ids[m] = p
        self.answer(200, {"code": "100", "request_id": rid, "results": [{"phone": p, "msg_id": m} for p, m in mine]})
        # After the answer, as providers do.
        threading.Timer(0.3, callbacks, (doc["callback"], rid, phones, mine)).start()

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        if u.path == "/status":
            asked = [i for i in q.get("ids", [""])[0].split(",") if i]
            items = []
            with lock:
                state["status_requests"] += 1
                state["status_times"].append(time.monotonic())
                state["max_ids"] = max(state["max_ids"], len(asked))
                state["ids_per_request"].append(len(asked))
                for i in asked:
                    if i not in ids:
                        continue
                    queried[i] = queried.get(i, 0) + 1
                    items.append({"msg_id": i, "stat": "ENROUTE" if queried[i] == 1 else final_for(ids[i])})
                # An id nobody asked about: Loa must ignore it.
                items.append({"msg_id": "stranger", "stat": "DELIVRD"})
            return self.answer(200, {"items": items})
        if u.path == "/request-status":
            rid = q.get("request", [""])[0]
            with lock:
                state["status_requests"] += 1
                phones = requests.get(rid, [])
            return self.answer(200, {"items": [{"request_id": rid, "Phone": p, "SendStatus": "4" if p.endswith("9") else "5"} for p in phones]})
        if u.path == "/fake/stats":
            with lock:
                return self.answer(200, state)
        self.answer(404, {"error": "no such path"})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(args.port_file + ".tmp", args.port_file)
threading.Timer(args.exit_after, server.shutdown).start()
server.serve_forever()
