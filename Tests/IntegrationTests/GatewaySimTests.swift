import Foundation
import LoaCarriers
import LoaServer
import Synchronization
import Testing

/// `loa gateway-sim`, the real binary, driven over 127.0.0.1: each shape's answers and receipt formats,
/// each fault flag at rate 1.0 (deterministic), and the counts the fault tests rely on.
@Suite(.ownThreads, .serialized)
struct GatewaySimTests {
    @Test func kannelAnswersAndReceipts() async throws {
        let sink = try ReceiptSink()
        let sim = try await SimProcess(["--username", "u", "--delivered-rate", "1", "--receipt-delay-ms", "0"], env: ["LOA_SIM_PASSWORD": "p"])
        let dlr = sink.url("/dlr/kannel?k=secret&st=%d&ts=%T&fc=%F&ans=%A&id=loa-1")
        let get = try await sim.request(
            "/cgi-bin/sendsms?username=u&password=p&from=LOA&to=84912345678&text=hi&dlr-mask=31&dlr-url=" + URLQuery.escape(dlr))
        #expect(get.status == 202)
        #expect(get.bodyText == "0: Accepted for delivery")
        let post = try await sim.request("/cgi-bin/sendsms", method: "POST", headers: [
            HTTPHeader("X-Kannel-Username", "u"), HTTPHeader("X-Kannel-Password", "p"), HTTPHeader("X-Kannel-From", "LOA"),
            HTTPHeader("X-Kannel-To", "0912345679"), HTTPHeader("X-Kannel-DLR-Mask", "3"),
            HTTPHeader("X-Kannel-DLR-Url", sink.url("/dlr/kannel?st=%d&fc=%F&id=loa-2")),
        ], body: "hello")
        #expect(post.status == 202)
        let denied = try await sim.request("/cgi-bin/sendsms?username=u&password=wrong&to=84912345678&text=hi")
        #expect(denied.status == 403)
        #expect(denied.bodyText == "Authorization failed for sendsms")
        #expect(try await sim.request("/cgi-bin/sendsms?username=u&password=p&text=hi").status == 400)
        #expect(try await sim.request("/cgi-bin/sendsms?username=u&password=p&to=84912345678").status == 400)

        // Mask 31: SMSC-accepted (8) then delivered (1); mask 3: delivered only.
        try await poll(10, "three Kannel receipts") { sink.received.count >= 3 }
        let first = sink.received.filter { $0.query["id"] == "loa-1" }
        #expect(first.map { $0.query["st"] } == ["8", "1"])
        #expect(first.allSatisfy { $0.query["fc"] == "k-00000001" && $0.query["k"] == "secret" && Int($0.query["ts"] ?? "") != nil })
        #expect(first.last?.query["ans"]?.contains("stat:DELIVRD err:000") == true)
        #expect(first.last?.query["ans"]?.hasPrefix("id:k-00000001 ") == true)
        #expect(sink.received.filter { $0.query["id"] == "loa-2" }.map { $0.query["st"] } == ["1"])

        let stats = try await sim.stats()
        #expect(stats["requests"] as? Int == 5)
        #expect(stats["accepted"] as? Int == 2)
        #expect(stats["rejected"] as? Int == 3)
        #expect(stats["receipts_sent"] as? Int == 3)
        #expect((stats["by_shape"] as? [String: Int])?["kannel"] == 2)
        #expect(try await sim.text("/sim/accepted") == "84912345678 1\n84912345679 1\n")
        #expect(sim.stop() == 0)
    }

    /// Queue mode: accepted at any rate, passed on at `--pass-on-rate` first in first out, receipts at the pass-on;
    /// a message whose validity (Kannel `validity`, minutes) ends before its turn expires in the queue.
    @Test func queueModePassesOnAtItsPaceAndExpiresWhatOutlivesItsValidity() async throws {
        let sink = try ReceiptSink()
        let sim = try await SimProcess(["--delivered-rate", "1", "--pass-on-rate", "0.1"])
        func send(_ i: Int) async throws -> Int {
            let dlr = sink.url("/dlr/kannel?st=%d&ans=%A&id=q-\(i)")
            return try await sim.request("/cgi-bin/sendsms?username=u&password=p&from=LOA&to=8491234\(1000 + i)&text=hi&validity=1&dlr-mask=31&dlr-url="
                                         + URLQuery.escape(dlr)).status
        }
        // One every 10 s, validity 1 minute: 7 turns fit in it (0 s … 60 s), the rest expire in the queue (an 8th
        // only if sending the first 8 took over 10 s).
        let start = Int64(Date().timeIntervalSince1970 * 1000)
        for i in 1...10 { #expect(try await send(i) == 202) }
        let end = Int64(Date().timeIntervalSince1970 * 1000)
        let records = try await sim.text("/sim/passed-on").split(separator: "\n").map { $0.split(separator: " ") }
        #expect(records.count == 10)
        let passed = records.filter { $0[2] == "passed" }.compactMap { Int64($0[1]) }
        let expired = records.filter { $0[2] == "expired" }
        // On a loaded machine the requests may take seconds: each one spread over 10 s lets one more fit.
        #expect(passed.count >= 7 && passed.count <= 8 + Int((end - start) / 10_000), "\(passed.count) passed on in \(end - start) ms")
        #expect(expired.count == 10 - passed.count)
        // First in first out at the pace: 10 s apart, the first at once.
        #expect(records.prefix(passed.count).map { String($0[0]) } == (1...passed.count).map { "q-\($0)" })
        #expect(zip(passed, passed.dropFirst()).allSatisfy { $1 - $0 >= 9_990 && $1 - $0 <= 10_010 }, "\(passed)")
        #expect(passed[0] >= start - 100 && passed[0] <= end + 100)
        // An expired message is dropped at its validity end, one minute after it was accepted.
        for e in expired { #expect(((start - 100)...(end + 100)).contains((Int64(e[1]) ?? 0) - 60_000), "\(e)") }
        let stats = try await sim.stats()
        #expect(stats["accepted"] as? Int == 10 && (stats["queued"] as? Int ?? 0) >= 1, "\(stats)")
        // Receipts come at the pass-on: smsc-accepted then delivered; the second message's not before its turn.
        try await poll(10, "the first message's receipts") { sink.received.filter { $0.query["id"] == "q-1" }.count == 2 }
        #expect(sink.received.filter { $0.query["id"] == "q-1" }.map { $0.query["st"] } == ["8", "1"])
        if Int64(Date().timeIntervalSince1970 * 1000) - start < 9_000 { #expect(sink.received.filter { $0.query["id"] == "q-2" }.isEmpty) }
        #expect(sim.stop() == 0)
    }

    @Test func jasminAnswersAndReceiptsWithAckRetries() async throws {
        // The sink answers ACK/Jasmin only from the second attempt of each receipt.
        let sink = try ReceiptSink(answer: { attempt in attempt >= 2 ? "ACK/Jasmin" : "NOT ACK" })
        let sim = try await SimProcess(["--username", "u", "--delivered-rate", "0",
                                        "--receipt-delay-ms", "0", "--receipt-retry-ms", "50", "--receipt-retries", "3"], env: ["LOA_SIM_PASSWORD": "p"])
        let ok = try await sim.request("/send?username=u&password=p&to=84911111111&content=hello&dlr=yes&dlr-level=3&dlr-url="
                                       + URLQuery.escape(sink.url("/jasmin/get")))
        #expect(ok.status == 200)
        let id = String(try #require(ok.bodyText.firstMatch(of: /^Success "([0-9a-f-]{36})"$/)?.1))
        let form = "username=u&password=p&to=84922222222&hex-content=68656c6c6f&dlr=yes&dlr-level=2&dlr-method=POST&dlr-url="
            + URLQuery.escape(sink.url("/jasmin/post?x=1"))
        let posted = try await sim.request("/send", method: "POST",
                                           headers: [HTTPHeader("Content-Type", "application/x-www-form-urlencoded")], body: form)
        #expect(posted.status == 200)
        let denied = try await sim.request("/send?username=u&password=bad&to=84911111111&content=x")
        #expect(denied.status == 403)
        #expect(denied.bodyText == "Error \"Authentication failure for username:u\"")
        let missing = try await sim.request("/send?username=u&password=p&content=x")
        #expect(missing.status == 400)
        #expect(missing.bodyText == "Error \"Mandatory argument [to] is not found.\"")

        // 3 receipts, each answered once without the ACK and retried once.
        try await poll(10, "three Jasmin receipts acknowledged") { (try await sim.stats())["receipts_sent"] as? Int == 3 }
        let got = sink.received
        #expect(got.count == 6)
        let levels = got.filter { $0.path == "/jasmin/get" }
        #expect(levels.map { $0.query["level"] } == ["1", "1", "2", "2"])
        #expect(levels.first?.query["message_status"] == "ESME_ROK")
        #expect(levels.allSatisfy { $0.query["id"] == id && $0.method == "GET" })
        let final = try #require(levels.last?.query)
        #expect(final["message_status"] == "UNDELIV" && final["dlvrd"] == "000" && final["text"] == "hello")
        for key in ["id_smsc", "sub", "subdate", "donedate", "err"] { #expect(final[key] != nil, "level 2 lacks \(key)") }
        let post = got.filter { $0.path == "/jasmin/post" }
        #expect(post.count == 2)
        #expect(post.allSatisfy { $0.method == "POST" && $0.query["x"] == "1" })
        let body = Dictionary(formPairs(post.last?.body ?? ""), uniquingKeysWith: { $1 })
        #expect(body["level"] == "2" && body["message_status"] == "UNDELIV" && body["text"] == "hello")

        let stats = try await sim.stats()
        #expect(stats["accepted"] as? Int == 2)
        #expect(stats["receipt_retries"] as? Int == 3)
        #expect(stats["receipts_failed"] as? Int == 0)
        #expect(stats["rejected"] as? Int == 2)
        #expect(sim.stop() == 0)
    }

    @Test func genericBatchesTokenAndReceipts() async throws {
        let sink = try ReceiptSink()
        let sim = try await SimProcess(["--max-batch", "3", "--delivered-rate", "0",
                                        "--intermediate", "--receipt-delay-ms", "0"], env: ["LOA_SIM_TOKEN": "tok"])
        let batch = """
            {"sender":"LOA","callback_url":"\(sink.url("/cb"))","messages":[
              {"to":"84912345678","text":"a","ref":"123"},{"to":"12345","text":"b","ref":"124"},{"to":"849123456789","text":"c","ref":"125"}]}
            """
        let auth = [HTTPHeader("Authorization", "Bearer tok"), HTTPHeader("Content-Type", "application/json")]
        let wrong = try await sim.request("/api/sms", method: "POST", headers: [HTTPHeader("Authorization", "Bearer nope")], body: batch)
        #expect(wrong.status == 401)
        #expect(wrong.bodyText == #"{"status":"error","error":"unauthorized"}"#)
        let ok = try await sim.request("/api/sms", method: "POST", headers: auth, body: batch)
        #expect(ok.status == 200)
        #expect(ok.bodyText == #"{"status":"ok","results":[{"ref":"123","id":"g-00000001","status":"queued"},"#
            + #"{"ref":"124","status":"rejected","error":"invalid number"},{"ref":"125","id":"g-00000002","status":"queued"}]}"#)
        let tooMany = "{\"messages\":[" + Array(repeating: #"{"to":"84912345678","text":"a","ref":"1"}"#, count: 4).joined(separator: ",") + "]}"
        #expect(try await sim.request("/api/sms", method: "POST", headers: auth, body: tooMany).status == 400)

        try await poll(10, "four generic receipts") { sink.received.count >= 4 }
        let receipts = sink.received.compactMap { try? JSONSerialization.jsonObject(with: Data($0.body.utf8)) as? [String: String] }
        let first = receipts.filter { $0["ref"] == "123" }
        #expect(first.map { $0["status"] } == ["ENROUTE", "UNDELIVERED"])
        #expect(first.allSatisfy { $0["id"] == "g-00000001" && $0["to"] == "84912345678" && $0["error_code"] != nil })
        #expect(sink.received.allSatisfy { $0.method == "POST" && $0.path == "/cb" })

        let stats = try await sim.stats()
        #expect(stats["accepted"] as? Int == 2)
        #expect(stats["rejected"] as? Int == 3)  // the token, one number, the batch
        #expect((stats["by_shape"] as? [String: Int])?["generic"] == 2)
        #expect(sim.stop() == 0)
    }

    @Test func genericBodiesItCannotReadAreRejectedAndRefsComeBackAsSent() async throws {
        let sim = try await SimProcess([])
        for bad in ["not json", "[1,2]", #"{"messages":[]}"#, #"{"messages":{"to":"84912345678","text":"a"}}"#, #"{"messages":[1"#] {
            let r = try await sim.request("/api/sms", method: "POST", body: bad)
            #expect(r.status == 400, "\(bad)")
            #expect(r.bodyText == #"{"status":"error","error":"body must be a JSON object with a non-empty messages array"}"#, "\(bad)")
        }
        // A number as ref comes back as written; refs that need escaping come back escaped; a message without
        // text is rejected alone.
        let body = #"{"messages":[{"to":"+84912345678","text":"a","ref":7},{"to":"84912345679","ref":"q\"r"},"#
            + #"{"to":"84912345670","text":"b","ref":"x\\y"}]}"#
        let ok = try await sim.request("/api/sms", method: "POST", body: body)
        #expect(ok.status == 200)
        #expect(ok.bodyText == #"{"status":"ok","results":[{"ref":"7","id":"g-00000001","status":"queued"},"#
            + #"{"ref":"q\"r","status":"rejected","error":"missing text"},{"ref":"x\\y","id":"g-00000002","status":"queued"}]}"#)
        let stats = try await sim.stats()
        #expect(stats["accepted"] as? Int == 2)
        #expect(stats["rejected"] as? Int == 6)  // five bodies, one message
        #expect(sim.stop() == 0)
    }

    @Test func errorsAndThrottlingAcceptNothing() async throws {
        let errors = try await SimProcess(["--error-rate", "1", "--error-status", "503", "--no-receipts"])
        #expect(try await errors.request(kannelPath()).status == 503)
        #expect(try await errors.request("/send?username=u&password=p&to=84911111111&content=x").status == 503)
        let generic = try await errors.request("/api/sms", method: "POST", body: #"{"messages":[{"to":"84912345678","text":"a","ref":"1"}]}"#)
        #expect(generic.status == 503)
        #expect(generic.bodyText.hasPrefix(#"{"status":"error","error":"#))
        var stats = try await errors.stats()
        #expect(stats["errors"] as? Int == 3 && stats["accepted"] as? Int == 0 && stats["requests"] as? Int == 3)
        #expect(errors.stop() == 0)

        let throttled = try await SimProcess(["--throttle-rate", "1", "--no-receipts"])
        let k = try await throttled.request(kannelPath())
        #expect(k.status == 429 && k.header("retry-after") == "1")
        let j = try await throttled.request("/send?username=u&password=p&to=84911111111&content=x")
        #expect(j.status == 403 && j.bodyText == "Error \"User throughput exceeded\"")
        let g = try await throttled.request("/api/sms", method: "POST", body: #"{"messages":[{"to":"84912345678","text":"a"}]}"#)
        #expect(g.status == 429 && g.bodyText == #"{"status":"error","error":"rate limited"}"# && g.header("retry-after") == "1")
        stats = try await throttled.stats()
        #expect(stats["throttled"] as? Int == 3 && stats["accepted"] as? Int == 0)
        #expect(throttled.stop() == 0)

        // The token bucket: 5 a second, 20 requests at once; the bucket holds 5.
        let limited = try await SimProcess(["--max-rate", "5", "--no-receipts"])
        var statuses: [Int] = []
        let began = ContinuousClock.now
        for _ in 0..<20 { statuses.append(try await limited.request(kannelPath()).status) }
        let elapsed = Double((ContinuousClock.now - began).components.attoseconds) / 1e18 + Double((ContinuousClock.now - began).components.seconds)
        // The bucket's 5, plus what refilled at 5/s while the requests ran (however slow the machine is).
        let ok = statuses.filter { $0 == 202 }.count
        #expect(ok >= 5 && ok <= 5 + Int((5 * elapsed).rounded(.up)) + 1, "\(ok) accepted in \(elapsed) s")
        stats = try await limited.stats()
        #expect((stats["throttled"] as? Int ?? 0) + (stats["accepted"] as? Int ?? 0) == 20)
        #expect(limited.stop() == 0)
    }

    @Test func timeoutsAndResetsCountWhatWasAccepted() async throws {
        let hang = try await SimProcess(["--timeout-rate", "1", "--hang-seconds", "5", "--no-receipts"])
        do {
            _ = try await hang.engine.perform(HTTPRequest(url: hang.base + kannelPath(), timeout: 1))
            Issue.record("a held answer arrived")
        } catch {
            guard case .timedOut = error else { Issue.record("expected a timeout, got \(error)"); return }
        }
        var stats = try await hang.stats()
        #expect(stats["accepted"] as? Int == 1 && stats["timeouts"] as? Int == 1)
        #expect(hang.stop() == 0)  // ends the held answer early

        for (afterAccept, accepted) in [("1", 1), ("0", 0)] {
            let reset = try await SimProcess(["--reset-rate", "1", "--reset-after-accept", afterAccept, "--no-receipts"])
            do {
                _ = try await reset.engine.perform(HTTPRequest(url: reset.base + kannelPath(), timeout: 5))
                Issue.record("a reset connection answered")
            } catch {
                guard case .connectionLost = error else { Issue.record("expected a lost connection, got \(error)"); return }
            }
            do {
                _ = try await reset.request("/api/sms", method: "POST", body: #"{"messages":[{"to":"84912345678","text":"a"}]}"#)
                Issue.record("a reset connection answered")
            } catch {}
            stats = try await reset.stats()
            #expect(stats["resets"] as? Int == 2 && stats["accepted"] as? Int == 2 * accepted)
            #expect(reset.stop() == 0)
        }
    }

    @Test func duplicatesAndJournalSurviveRestart() async throws {
        let work = WorkDir("gateway-sim")
        let journal = work.file("journal")
        let sim = try await SimProcess(["--journal", journal, "--no-receipts"], work: work)
        for to in ["84912345678", "0912345678", "84911111111"] { #expect(try await sim.request(kannelPath(to: to)).status == 202) }
        var stats = try await sim.stats()
        #expect(stats["accepted"] as? Int == 3 && stats["duplicates"] as? Int == 1 && stats["unique_recipients"] as? Int == 2)
        #expect(try await sim.text("/sim/accepted") == "84911111111 1\n84912345678 2\n")
        #expect(sim.stop() == 0)
        let mode = try FileManager.default.attributesOfItem(atPath: journal)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let lines = try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "kannel 84912345678 loa-7 k-00000001")
        #expect(lines.count == 3)

        let again = try await SimProcess(["--journal", journal, "--no-receipts", "--exit-after", "30"], work: work)
        stats = try await again.stats()
        #expect(stats["accepted"] as? Int == 3 && stats["duplicates"] as? Int == 1 && stats["requests"] as? Int == 0)
        #expect(try await again.request(kannelPath(to: "84911111111")).status == 202)
        stats = try await again.stats()
        #expect(stats["accepted"] as? Int == 4 && stats["duplicates"] as? Int == 2 && stats["unique_recipients"] as? Int == 2)
        #expect(try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n").last?.hasSuffix(" k-00000004") == true)
        #expect(try await again.request("/sim/reset-stats", method: "POST").status == 200)
        stats = try await again.stats()
        #expect(stats["accepted"] as? Int == 0 && stats["requests"] as? Int == 0)
        #expect(again.stop() == 0)
    }

    @Test func sameSeedSameAnswers() async throws {
        var runs: [[Int]] = []
        for _ in 0..<2 {
            let sim = try await SimProcess(["--error-rate", "0.3", "--throttle-rate", "0.3", "--no-receipts"])  // --seed 1
            var statuses: [Int] = []
            for _ in 0..<30 { statuses.append(try await sim.request(kannelPath()).status) }
            let stats = try await sim.stats()
            #expect(stats["accepted"] as? Int == statuses.filter { $0 == 202 }.count)
            #expect(stats["errors"] as? Int == statuses.filter { $0 == 500 }.count)
            #expect(stats["throttled"] as? Int == statuses.filter { $0 == 429 }.count)
            #expect(sim.stop() == 0)
            runs.append(statuses)
        }
        #expect(runs[0] == runs[1])
        #expect(Set(runs[0]) == [202, 429, 500])
    }

    @Test func fullReceiptQueueDropsAndCounts() async throws {
        let sim = try await SimProcess(["--receipt-queue", "2", "--receipt-delay-ms", "60000"])
        for to in ["84911111111", "84922222222", "84933333333"] { #expect(try await sim.request(kannelPath(to: to)).status == 202) }
        // Mask 31, delivered or not: two receipts a message; the first message's two fill the queue.
        let stats = try await sim.stats()
        #expect(stats["receipts_pending"] as? Int == 2 && stats["receipts_dropped"] as? Int == 4 && stats["receipts_sent"] as? Int == 0)
        #expect(sim.stop() == 0)
        #expect(sim.child.output.contains("receipts_dropped=4 receipts_pending=2"))
    }

    @Test func exitsByItselfAfterExitAfter() async throws {
        let sim = try await SimProcess(["--exit-after", "0.5", "--no-receipts"])
        #expect(sim.child.wait(seconds: 10) == 0)
        #expect(sim.child.output.contains("gateway-sim: stopped requests=0"))
    }

    /// Issue 16: `--password P` and `--token T` put the secrets in the command line, which every local user reads
    /// (`ps`, /proc/PID/cmdline). They come from files or the environment; the old flags are refused, naming those.
    @Test func secretsNeverInTheCommandLine() async throws {
        let work = WorkDir("sim-secrets")
        let password = "pw-" + String(UUID().uuidString.prefix(12)), token = "tok-" + String(UUID().uuidString.prefix(12))
        work.write("password", password + "\n")
        work.write("token", token + "\n")
        let sim = try await SimProcess(["--username", "u", "--password-file", work.file("password"), "--token-file", work.file("token")], work: work)
        let cmdline = String(decoding: try Data(contentsOf: URL(fileURLWithPath: "/proc/\(sim.child.pid)/cmdline")), as: UTF8.self)
        #expect(cmdline.contains("gateway-sim") && cmdline.contains("--password-file"), "\(cmdline)")
        #expect(!cmdline.contains(password) && !cmdline.contains(token), "a secret is in the command line: \(cmdline)")
        // The secrets from the files are the ones required.
        let send = "/cgi-bin/sendsms?username=u&from=LOA&to=84912345678&text=hi&password="
        #expect(try await sim.request(send + "wrong").status == 403)
        #expect(try await sim.request(send + password).status == 202)
        let batch = #"{"messages":[{"to":"84912345678","text":"a","ref":"1"}]}"#
        #expect(try await sim.request("/api/sms", method: "POST", headers: [HTTPHeader("Authorization", "Bearer wrong")], body: batch).status == 401)
        #expect(try await sim.request("/api/sms", method: "POST", headers: [HTTPHeader("Authorization", "Bearer \(token)")], body: batch).status == 200)
        #expect(sim.stop() == 0)
        // From the environment as well.
        let fromEnv = try await SimProcess(["--username", "u"], env: ["LOA_SIM_PASSWORD": password], work: work)
        #expect(try await fromEnv.request(send + password).status == 202)
        #expect(fromEnv.stop() == 0)
        for flag in ["--password", "--token"] {
            let old = try run(Env.loaBinary, ["gateway-sim", "--port", "0", "--username", "u", flag, "secret-on-the-command-line"])
            #expect(old.status == 2 && old.output.contains("\(flag) is refused") && old.output.contains("\(flag)-file FILE"), "\(old.output)")
        }
        let missing = try run(Env.loaBinary, ["gateway-sim", "--port", "0", "--username", "u"], env: ["LOA_SIM_PASSWORD": ""])
        #expect(missing.status == 2 && missing.output.contains("--password-file FILE or LOA_SIM_PASSWORD"), "\(missing.output)")
    }
}

/// A Kannel GET for one message with a Loa-like dlr-url id.
private func kannelPath(to: String = "84912345678") -> String {
    "/cgi-bin/sendsms?username=u&password=p&from=LOA&to=\(to)&text=hi&dlr-mask=31&dlr-url="
        + URLQuery.escape("http://127.0.0.1:9/dlr/k?st=%d&id=loa-7")
}

private func formPairs(_ s: String) -> [(String, String)] {
    s.split(separator: "&").map { part in
        let kv = part.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
        return (kv[0], kv.count > 1 ? kv[1] : "")
    }
}

/// A running `loa gateway-sim --port 0 --ready-file …`.
final class SimProcess: @unchecked Sendable {
    let work: WorkDir
    let child: Child
    let port: Int
    let engine: CurlEngine

    /// `env`: the simulator's secrets (`LOA_SIM_PASSWORD`, `LOA_SIM_TOKEN`), never flags.
    init(_ args: [String], env: [String: String] = [:], work: WorkDir = WorkDir("gateway-sim")) async throws {
        self.work = work
        let ready = work.file("ready-\(UUID().uuidString.prefix(6))")
        child = try Child(Env.loaBinary, ["gateway-sim", "--port", "0", "--ready-file", ready, "--seed", "1"] + args, env: env,
                          log: work.file("sim-\(UUID().uuidString.prefix(6)).log"))
        engine = try CurlEngine(maxConnectionsPerHost: 8)
        var port = 0
        try await poll(60, "the simulator's ready file") { [child] in
            // The ready file first: a simulator started with a short --exit-after may have come and gone already.
            port = (try? String(contentsOfFile: ready, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
            if port > 0 { return true }
            guard child.isRunning else { throw HarnessError(message: "gateway-sim exited:\n\(child.output)") }
            return false
        }
        self.port = port
    }

    var base: String { "http://127.0.0.1:\(port)" }

    func request(_ path: String, method: String = "GET", headers: [HTTPHeader] = [], body: String = "") async throws -> HTTPResponse {
        try await engine.perform(HTTPRequest(method: method, url: base + path, headers: headers, body: Array(body.utf8), timeout: 10))
    }

    func text(_ path: String) async throws -> String { try await request(path).bodyText }

    func stats() async throws -> [String: Any] {
        let r = try await request("/sim/stats")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
    }

    /// SIGTERM; the exit status.
    func stop() -> Int32? {
        child.signal(SIGTERM)
        let status = child.wait(seconds: 20)
        if status == nil { child.signal(SIGKILL); _ = child.wait(seconds: 5) }
        return status
    }

    deinit {
        if child.isRunning { child.signal(SIGKILL); _ = child.wait(seconds: 5) }
        engine.shutdown()
    }
}

/// A receipt endpoint on 127.0.0.1 (LoaServer's `HTTPServer` with a `.buffer` route) that records what
/// arrives and answers `answer(attempt)`, where attempt counts requests with the same method, URL and body.
final class ReceiptSink: Sendable {
    struct Received: Sendable {
        var method: String
        var path: String
        var query: [String: String]
        var body: String
    }

    /// The service; kept apart from the sink so the server does not keep the sink alive.
    final class Recorder: HTTPService {
        let log = Mutex<[Received]>([])
        let attempts = Mutex<[String: Int]>([:])
        let answer: @Sendable (Int) -> String
        init(answer: @escaping @Sendable (Int) -> String) { self.answer = answer }

        func route(_ head: RequestHead) -> Route {
            .buffer(limit: 1 << 16) { [self] head, body in
                let text = String(decoding: body, as: UTF8.self)
                let query = (head.rawQuery ?? []).map { "\($0.0)=\($0.1)" }.joined(separator: "&")
                let key = head.method + " " + head.path + "?" + query + " " + text
                let attempt = attempts.withLock { a in
                    a[key, default: 0] += 1
                    return a[key]!
                }
                log.withLock { $0.append(Received(method: head.method, path: head.path, query: head.query, body: text)) }
                return .text(200, answer(attempt))
            }
        }
    }

    private let recorder: Recorder
    private let server: HTTPServer

    init(answer: @escaping @Sendable (Int) -> String = { _ in "ok" }) throws {
        recorder = Recorder(answer: answer)
        server = try HTTPServer(port: 0, service: recorder, connectionTimeout: 2)
    }

    deinit { server.stop() }

    func url(_ path: String) -> String { "http://127.0.0.1:\(server.port)" + path }
    var received: [Received] { recorder.log.withLock { $0 } }
}
