import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import Synchronization

/// `loa gateway-sim`: a carrier gateway simulator for the demo, the benchmarks and the fault tests.
///
/// One port speaks three gateway shapes (Kannel `/cgi-bin/sendsms`, Jasmin `/send`, a generic JSON
/// `/api/sms`), injects faults drawn from a seeded generator, sends delivery receipts back, and counts
/// everything it did at `/sim/stats` so a test can prove what the gateway really got. Requests are
/// answered on libmicrohttpd's connection threads (latency and hangs block only their connection);
/// receipts go out through one ``CurlEngine`` (see ``SimReceiptSender``).
///
/// Lifecycle: start → listen (write `--ready-file`) → serve until SIGTERM/SIGINT or `--exit-after` →
/// stop accepting (send requests get 503), end held answers, stop the server, send no more receipts,
/// sync and close the journal, print the final counts, exit 0.
public enum GatewaySim {
    public static let help = """
        usage: loa gateway-sim [--address 127.0.0.1] [--port 13100] [--seed N] [options]

        A carrier gateway simulator on one port, for demos, benchmarks and fault tests. It speaks:
          Kannel   GET|POST /cgi-bin/sendsms   202 "0: Accepted for delivery"; receipts GET the dlr-url
          Jasmin   GET|POST /send              200 Success "<id>"; receipts per dlr-level/dlr-method,
                                               retried unless answered "ACK/Jasmin"
          generic  POST /api/sms (JSON batch)  200 {"status":"ok","results":[…]}; receipts POST JSON
        and answers GET /sim/stats (JSON counts), GET /sim/accepted (`<to> <count>` lines), GET /sim/timeline
        (messages accepted per 100 ms), GET /sim/passed-on (queue mode), POST /sim/reset-stats. Rates are probabilities 0…1 drawn from a generator seeded by --seed.

          --address A              bind address (default 127.0.0.1)
          --port N                 port (default 13100; 0 picks a free one, see --ready-file)
          --ready-file FILE        write the bound port to FILE once listening
          --seed N                 seed (default: from the clock, printed at start)
          --username U             Kannel/Jasmin user; its password from --password-file FILE or
                                   $LOA_SIM_PASSWORD (default: any credentials accepted)
          --token-file FILE        generic shape bearer token, else $LOA_SIM_TOKEN (default: none required)
                                   (secrets are never flags: every user can read a command line)
          --max-batch N            generic shape messages per request (default 1000)
          --latency-ms N           delay before every answer (default 0)
          --latency-jitter-ms N    plus 0…N ms more (default 0)
          --error-rate p           answer --error-status, accept nothing (default 0)
          --error-status N         500…599 (default 500)
          --throttle-rate p        answer 429 (Jasmin: 403 User throughput exceeded), accept nothing (default 0)
          --max-rate N             token bucket: beyond N requests/s answer as throttled, Retry-After: 1 (default off)
          --pass-on-rate N         queue mode: accept at any rate, pass messages on to the handsets at N/s (FIFO);
                                   receipts (smsc-accepted, then final) when passed on; a message whose validity
                                   (Kannel validity, Jasmin validity-period: minutes) ends first gets an EXPIRED
                                   receipt then; GET /sim/passed-on lists `<ref> <unix ms> passed|expired`
          --max-rate N             token bucket: beyond N requests/s answer as throttled, saying when the next is allowed
                                   (default off)
          --limit-header H         how: retry-after (seconds, default), x-rate-limit-reset (Unix time) or ratelimit
                                   (IETF RateLimit/RateLimit-Policy fields, t in fractional seconds)
          --timeout-rate p         accept, then hold the answer --hang-seconds (default 0)
          --hang-seconds S         (default 30)
          --reset-rate p           close the connection without an answer (default 0)
          --reset-after-accept p   of those, the share accepted first (default 0.5)
          --delivered-rate p       final receipts that say delivered; the rest undelivered (default 0.95)
          --receipt-delay-ms N     delay before a message's receipts (default 100)
          --no-receipts            send no receipts
          --intermediate           generic shape: an ENROUTE receipt before the final one
          --failure-text TEXT      generic shape: the undelivered receipts' error_code, {id} and {to} replaced by
                                   the message's gateway id and number (default "001")
          --receipt-concurrency N  receipts in flight (default 32)
          --receipt-queue N        receipts queued at most; more are dropped and counted (default 100000)
          --receipt-retries N      receipt retries when the client does not take it (no answer, 5xx; Jasmin: not ACK/Jasmin) (default 3)
          --receipt-retry-ms N     between those retries (default 1000)
          --drain-seconds S        at SIGTERM, keep sending owed receipts this long (default 5)
          --journal FILE           append `<shape> <to> <ref-or-loa-id> <sim id>` per accepted message (0600);
                                   read at start to restore counts and the duplicate set
          --exit-after S           stop by itself after S seconds
          --connections N          open connections at most (default 1024)
          --stats-every S          seconds between summary lines on stderr (default 5)

        SIGTERM/SIGINT: stop accepting, send the receipts owed (up to --drain-seconds, default 5), then no more, sync the journal, print the counts, exit 0.
        """

    public static func main(_ args: [String]) -> Int32 {
        let config: SimConfig
        do { config = try SimConfig(args) } catch {
            say("loa gateway-sim: \(error)\n\n\(help)")
            return 2
        }
        // Block the stop signals before any thread starts, so every thread inherits the mask and only
        // the sigtimedwait below takes them.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)

        let seed = config.seed ?? UInt64(truncatingIfNeeded: SystemTimeSource().now())
        let ledger: SimLedger
        do { ledger = try SimLedger(journal: config.journal) } catch {
            say("loa gateway-sim: \(error)")
            return 1
        }
        let faults = SimFaults(config: config, random: SimRandom(seed: seed))
        var receipts: SimReceiptSender?
        if config.receipts {
            do {
                let engine = try CurlEngine(maxConnectionsPerHost: config.receiptConcurrency,
                                            maxTotalConnections: max(config.receiptConcurrency, 64))
                receipts = SimReceiptSender(engine: engine, capacity: config.receiptQueue, retries: config.receiptRetries,
                                            retryMs: config.receiptRetryMs, clock: { [faults] in faults.elapsedMillis })
            } catch {
                say("loa gateway-sim: cannot start the HTTP client: \(error)")
                return 1
            }
        }
        let service = GatewaySimService(config: config, seed: seed, faults: faults, ledger: ledger, receipts: receipts)
        let server: HTTPServer
        do {
            server = try HTTPServer(address: config.address, port: config.port, service: service,
                                    connectionLimit: config.connections, connectionTimeout: 10)
        } catch {
            say("loa gateway-sim: cannot listen on \(config.address) port \(config.port): \(error)")
            ledger.close()
            return 1
        }
        receipts?.start(concurrency: config.receiptConcurrency)
        if let ready = config.readyFile {
            let tmp = ready + ".tmp"
            guard FileManager.default.createFile(atPath: tmp, contents: Data("\(server.port)\n".utf8)), rename(tmp, ready) == 0 else {
                say("loa gateway-sim: \(ready): cannot write the ready file")
                server.stop()
                receipts?.stop(seconds: 1)
                ledger.close()
                return 1
            }
        }
        let restored = ledger.snapshot
        say("gateway-sim: listening on \(config.address) port \(server.port) seed=\(seed)"
            + (config.journal.map { " journal=\($0) restored=\(restored.accepted)" } ?? ""))

        let started = ContinuousClock.now
        var lastSummary = started
        var lastRequests = restored.requests
        while true {
            var wait = timespec(tv_sec: 0, tv_nsec: 250_000_000)
            if sigtimedwait(&signals, nil, &wait) > 0 { break }
            let now = ContinuousClock.now
            if let limit = config.exitAfter, now - started >= .milliseconds(Int(limit * 1000)) { break }
            if now - lastSummary >= .milliseconds(Int(config.statsEvery * 1000)) {
                let seconds = Double((now - lastSummary).components.seconds) + Double((now - lastSummary).components.attoseconds) * 1e-18
                let requests = ledger.snapshot.requests
                say("gateway-sim: " + service.summary(rps: Double(requests - lastRequests) / seconds))
                lastRequests = requests
                lastSummary = now
            }
        }
        service.stopping.store(true, ordering: .relaxed)
        server.stop()
        // Receipts owed for what was accepted go out first (bounded), as a real gateway's stored DLRs would.
        receipts?.drain(seconds: config.drainSeconds)
        receipts?.stop(seconds: 2)
        ledger.close()
        let total = Double((ContinuousClock.now - started).components.seconds) + 1e-9
        say("gateway-sim: stopped " + service.summary(rps: Double(ledger.snapshot.requests - restored.requests) / max(1, total)))
        return 0
    }

    static func say(_ s: String) {
        FileHandle.standardError.write(Data((s.hasSuffix("\n") ? s : s + "\n").utf8))
    }
}

/// The simulator's HTTP face: routes the three shapes and the `/sim/` endpoints.
final class GatewaySimService: HTTPService {
    let config: SimConfig
    let seed: UInt64
    let faults: SimFaults
    let ledger: SimLedger
    let receipts: SimReceiptSender?
    /// Queue mode (`--pass-on-rate`), else nil: every message is passed on when accepted.
    let queue: SimHandsetQueue?
    let stopping = Atomic(false)

    init(config: SimConfig, seed: UInt64, faults: SimFaults, ledger: SimLedger, receipts: SimReceiptSender?) {
        self.config = config
        self.seed = seed
        self.faults = faults
        self.ledger = ledger
        self.receipts = receipts
        queue = config.passOnRate > 0 ? SimHandsetQueue(rate: config.passOnRate) : nil
    }

    func route(_ head: RequestHead) -> Route {
        switch (head.method, head.path) {
        case ("GET", "/sim/stats"): return .respond(.json(200, Array(statsJSON().utf8)))
        case ("GET", "/sim/accepted"): return .respond(.text(200, ledger.acceptedText()))
        case ("GET", "/sim/timeline"): return .respond(.json(200, Array(ledger.timelineJSON().utf8)))
        case ("GET", "/sim/passed-on"): return .respond(.text(200, queue?.text() ?? ""))
        case ("POST", "/sim/reset-stats"):
            ledger.reset()
            queue?.reset()
            receipts?.resetCounts()
            return .respond(.json(200, Array(#"{"status":"ok"}"#.utf8)))
        case (_, "/cgi-bin/sendsms"), (_, "/send"), (_, "/api/sms"):
            break
        default:
            return .respond(.text(404, "not found\n"))
        }
        if stopping.load(ordering: .relaxed) { return .respond(ServerResponse.text(503, "shutting down\n")) }
        switch (head.method, head.path) {
        case ("GET", "/cgi-bin/sendsms"): return .respond(kannel(head, body: nil))
        case ("POST", "/cgi-bin/sendsms"): return .buffer(limit: 64 * 1024) { [self] head, body in kannel(head, body: body) }
        case ("GET", "/send"): return .respond(jasmin(head, form: head.rawQuery ?? []))
        case ("POST", "/send"):
            return .buffer(limit: 64 * 1024) { [self] head, body in jasmin(head, form: (head.rawQuery ?? []) + formDecode(body)) }
        case ("POST", "/api/sms"):
            return .buffer(limit: config.maxBatch * 4096 + 65536) { [self] head, body in generic(head, body: body) }
        default:
            return .respond(ServerResponse(status: 405, headers: [.init("Allow", head.path == "/api/sms" ? "POST" : "GET, POST")]))
        }
    }

    /// What to answer for each admission; `accepted` is called with the sim ids of the accepted messages.
    struct Answers {
        var accepted: ([String]) -> ServerResponse
        var throttled: ServerResponse
        var error: ServerResponse
    }

    /// One validated message: the recipient's digits, the client's reference and what receipts it wants.
    struct Incoming {
        var to: String
        var ref: String
        var plan: SimReceiptPlan
        /// The validity period the request carried (queue mode drops the message from its queue at its end).
        var validForMillis: Int64? = nil
    }

    /// The common path of every send request that passed validation: latency, faults, counting, receipts.
    func serve(_ shape: SimShape, _ messages: [Incoming], _ answers: Answers) -> ServerResponse {
        faults.delay { stopping.load(ordering: .relaxed) }
        let admission = faults.admit()
        switch admission {
        case .throttle(let limited):
            ledger.count(.throttled)
            var r = answers.throttled
            guard limited else {
                r.headers.append(.init("Retry-After", "1"))
                return r
            }
            // The request limit says when its next request is allowed, in the dialect asked for.
            let wait = faults.millisUntilToken()
            let seconds = max(1, (wait + 999) / 1000)
            switch config.limitHeader {
            case "x-rate-limit-reset":
                r.headers.append(.init("X-Rate-Limit-Reset", "\((Int64(time(nil)) * 1000 + max(wait, 1) + 999) / 1000)"))
            case "ratelimit":
                let window = String(format: "%.3f", Double(max(wait, 1)) / 1000)
                r.headers.append(.init("RateLimit", "\"sim\";r=0;t=\(window)"))
                r.headers.append(.init("RateLimit-Policy", "\"sim\";q=\(Int(config.maxRate.rounded(.up)));w=1"))
            default:
                r.headers.append(.init("Retry-After", "\(seconds)"))
            }
            return r
        case .error:
            ledger.count(.error)
            return answers.error
        case .reset:
            ledger.count(.reset)
            return .abort
        case .accept, .acceptAndHang, .acceptAndReset:
            break
        }
        let numbers = ledger.accept(shape, messages.map { ($0.to, $0.ref) }, id: { simID(shape, $0) })
        let ids = numbers.map { simID(shape, $0) }
        if let queue {
            // Queue mode: each message's turn (or its expiry in the queue) fixes when its receipts go out.
            let elapsed = faults.elapsedMillis
            let wall = SystemTimeSource().now()
            for (i, m) in messages.enumerated() {
                let slot = queue.enqueue(ref: m.ref, now: elapsed, wallNow: wall, validForMillis: m.validForMillis)
                let delivered = !slot.expired && faults.random.chance(config.deliveredRate)
                let list = m.plan.receipts(id: ids[i], number: numbers[i], delivered: delivered, now: (wall + slot.due - elapsed) / 1000,
                                           intermediate: config.intermediate, expired: slot.expired,
                                           failureText: config.failureText)
                receipts?.enqueue(SimReceiptJob(due: slot.due, receipts: list))
            }
        } else if let receipts {
            let due = faults.elapsedMillis + Int64(config.receiptDelayMs)
            let now = Int64(time(nil))
            for (i, m) in messages.enumerated() {
                let delivered = faults.random.chance(config.deliveredRate)
                let list = m.plan.receipts(id: ids[i], number: numbers[i], delivered: delivered, now: now, intermediate: config.intermediate,
                                           failureText: config.failureText)
                receipts.enqueue(SimReceiptJob(due: due, receipts: list))
            }
        }
        let response = answers.accepted(ids)
        switch admission {
        case .acceptAndHang:
            ledger.count(.timeout)
            faults.hang { stopping.load(ordering: .relaxed) }
            return response
        case .acceptAndReset:
            ledger.count(.reset)
            return .abort
        default:
            return response
        }
    }

    /// The sim's message id: `k-00000001` (Kannel), a UUID-like id (Jasmin), `g-00000001` (generic).
    func simID(_ shape: SimShape, _ n: Int) -> String {
        switch shape {
        case .kannel: return "k-" + zeroPadded(n, 8)
        case .generic: return "g-" + zeroPadded(n, 8)
        case .jasmin:
            let a = SimRandom.mix(seed ^ UInt64(n)), b = SimRandom.mix(a ^ UInt64(n))
            let h = hex(a, 16) + hex(b, 16)
            let c = Array(h)
            return String(c[0..<8]) + "-" + String(c[8..<12]) + "-4" + String(c[13..<16]) + "-a" + String(c[17..<20]) + "-" + String(c[20..<32])
        }
    }

    func statsJSON() -> String {
        let c = ledger.snapshot
        let r = receipts?.counts ?? SimReceiptSender.Counts()
        let q = queue?.counts(wallNow: SystemTimeSource().now()) ?? (passed: 0, expired: 0, queued: 0)
        return """
            {"requests":\(c.requests),"passed_on":\(q.passed),"expired_in_queue":\(q.expired),"queued":\(q.queued),"accepted":\(c.accepted),"unique_recipients":\(c.unique),\
            "duplicates":\(c.duplicates),"rejected":\(c.rejected),"throttled":\(c.throttled),"errors":\(c.errors),\
            "timeouts":\(c.timeouts),"resets":\(c.resets),"receipts_sent":\(r.sent),"receipts_failed":\(r.failed),\
            "receipts_dropped":\(r.dropped),"receipts_pending":\(r.pending),"receipt_retries":\(r.retries),\
            "by_shape":{"kannel":\(c.byShape[.kannel, default: 0]),"jasmin":\(c.byShape[.jasmin, default: 0]),\
            "generic":\(c.byShape[.generic, default: 0])},"busiest_second":\(ledger.busiestSecond),"seed":\(seed)}
            """
    }

    func summary(rps: Double) -> String {
        let c = ledger.snapshot
        let r = receipts?.counts ?? SimReceiptSender.Counts()
        return "requests=\(c.requests) accepted=\(c.accepted) rps=\(Int(rps.rounded())) duplicates=\(c.duplicates) "
            + "rejected=\(c.rejected) throttled=\(c.throttled) errors=\(c.errors) timeouts=\(c.timeouts) resets=\(c.resets) "
            + "receipts_sent=\(r.sent) receipts_failed=\(r.failed) receipts_dropped=\(r.dropped) receipts_pending=\(r.pending)"
    }
}

func zeroPadded(_ n: Int, _ width: Int) -> String {
    let s = String(n)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

func hex(_ v: UInt64, _ width: Int) -> String {
    let s = String(v, radix: 16)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}
