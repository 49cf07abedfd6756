import Foundation
import LoaCarriers
import Synchronization

/// One HTTP callback the simulator owes a client: a delivery receipt.
struct SimReceipt: Sendable {
    var request: HTTPRequest
    /// Jasmin's DLRThrower: only a body of exactly `ACK/Jasmin` ends it; anything else is retried.
    var needsJasminAck = false
}

/// The receipts of one message, sent in order (an intermediate one before the final one) once `due`.
struct SimReceiptJob: Sendable {
    var due: Int64
    var receipts: [SimReceipt]
    /// Attempts already made at the first receipt (a job queued again after its client did not take it).
    var attempts = 0
}

/// Sends receipts through one ``CurlEngine`` from a bounded queue.
///
/// `concurrency` worker tasks take due jobs in due order (a job is queued by its due time; nearly always at the
/// end) and send each job's receipts one after the other. The queue holds at most
/// `capacity` receipts; a job that does not fit is dropped whole and counted in `dropped`. Workers only
/// await (libcurl runs on the engine's own thread), so they never block the shared executor.
/// A receipt is retried `retries` times, `retryMs` apart, while the client does not answer or answers 5xx
/// (Jasmin: unless answered `ACK/Jasmin`); other shapes count any 2xx as sent and any 4xx as refused. After ``stop()`` nothing more is sent.
///
/// A retry goes back into the queue (the job from the receipt not taken, due `retryMs` later) and the worker takes the
/// next due job, as Kannel's smsbox queues a failed callback again: a client that is down (a cluster node killed and
/// restarting) no longer holds every worker for its retries while the other clients' receipts wait behind it (issue 21's
/// three-node run sent no receipt at all for the seconds a node was down). A client whose last attempt was not taken
/// gets one receipt at a time (a probe) until one is; its other due jobs wait `retryMs` more, uncounted: a client that
/// hangs (a node stopped with SIGSTOP, each attempt held to its timeout) keeps one worker, not all of them.
final class SimReceiptSender: Sendable {
    struct Counts: Sendable { var sent = 0, failed = 0, dropped = 0, pending = 0, retries = 0 }

    private struct State {
        var queue: [SimReceiptJob] = []
        var head = 0
        var counts = Counts()
        var stopping = false
        var workers = 0
        /// Receipts in flight per client (`host:port`), and the clients whose last attempt was not taken.
        var inFlight: [Substring: Int] = [:]
        var failing: Set<Substring> = []
    }

    private let state = SimLock(State())
    private let engine: CurlEngine
    private let capacity: Int
    private let retries: Int
    private let retryMs: Int
    private let clock: @Sendable () -> Int64

    init(engine: CurlEngine, capacity: Int, retries: Int, retryMs: Int, clock: @escaping @Sendable () -> Int64) {
        self.engine = engine
        self.capacity = capacity
        self.retries = retries
        self.retryMs = retryMs
        self.clock = clock
    }

    /// Starts the workers.
    func start(concurrency: Int) {
        state.withLock { $0.workers = concurrency }
        for _ in 0..<concurrency {
            Task.detached { [self] in
                await work()
                state.withLock { $0.workers -= 1 }
            }
        }
    }

    /// Queues a job, or drops it when the queue is full or stopping.
    func enqueue(_ job: SimReceiptJob) {
        guard !job.receipts.isEmpty else { return }
        state.withLock { s in
            if s.stopping || s.counts.pending + job.receipts.count > capacity {
                s.counts.dropped += job.receipts.count
                return
            }
            Self.insert(job, into: &s)
            s.counts.pending += job.receipts.count
        }
    }

    /// In due order: queue mode's receipts for a message that expires in the queue are due before those of messages
    /// queued ahead of it, and a retry is due `retryMs` from now (other jobs come in due order: the search stops at once).
    private static func insert(_ job: SimReceiptJob, into s: inout State) {
        var i = s.queue.count
        while i > s.head && s.queue[i - 1].due > job.due { i -= 1 }
        s.queue.insert(job, at: i)
    }

    /// Queues the rest of a job again for its next attempt: already counted in `pending`, so never dropped as full.
    private func retry(_ job: SimReceiptJob) {
        let due = clock() + Int64(retryMs)
        state.withLock { s in
            s.counts.retries += 1
            Self.insert(SimReceiptJob(due: due, receipts: job.receipts, attempts: job.attempts + 1), into: &s)
        }
    }

    var counts: Counts { state.withLock { $0.counts } }

    func resetCounts() { state.withLock { s in s.counts = Counts(pending: s.counts.pending) } }

    /// Like a gateway that shuts down cleanly: keeps sending until nothing is pending or `seconds` pass.
    func drain(seconds: Double) {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while state.withLock({ $0.counts.pending }) > 0 && ContinuousClock.now < deadline { usleep(10_000) }
    }

    /// Sends nothing more: queued receipts stay pending, requests in flight fail. Waits up to `seconds`
    /// for the workers to return.
    func stop(seconds: Double) {
        state.withLock { $0.stopping = true }
        engine.shutdown()
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while state.withLock({ $0.workers }) > 0 && ContinuousClock.now < deadline { usleep(10_000) }
    }

    private enum Next { case job(SimReceiptJob), wait(Int64), stop }

    /// The client a receipt goes to: the URL's authority (`127.0.0.1:8080`).
    static func client(_ url: String) -> Substring {
        let rest = url.range(of: "://").map { url[$0.upperBound...] } ?? url[...]
        return rest.prefix { $0 != "/" && $0 != "?" }
    }

    private func next() -> Next {
        let now = clock()
        let later = now + Int64(max(1, retryMs))
        return state.withLock { s in
            // Bounded: at most 256 jobs of failing clients set aside per call.
            for _ in 0..<256 {
                if s.stopping { return .stop }
                guard s.head < s.queue.count else { return .wait(20) }
                var job = s.queue[s.head]
                if job.due > now { return .wait(min(20, job.due - now)) }
                s.head += 1
                if s.head > 1024 && s.head * 2 > s.queue.count {
                    s.queue.removeFirst(s.head)
                    s.head = 0
                }
                let client = Self.client(job.receipts[0].request.url)
                if s.failing.contains(client) && s.inFlight[client, default: 0] > 0 {
                    job.due = later
                    Self.insert(job, into: &s)
                    continue
                }
                s.inFlight[client, default: 0] += 1
                return .job(job)
            }
            return .wait(5)
        }
    }

    /// An attempt at `client` ended: `taken` false when it did not take the receipt (no answer, 5xx).
    private func attempted(_ client: Substring, taken: Bool) {
        state.withLock { s in
            if taken { s.failing.remove(client) } else { s.failing.insert(client) }
        }
    }

    private func finished(_ client: Substring) {
        state.withLock { s in
            s.inFlight[client, default: 1] -= 1
            if s.inFlight[client] == 0 { s.inFlight[client] = nil }
        }
    }

    private var stopping: Bool { state.withLock { $0.stopping } }

    private func work() async {
        while true {
            switch next() {
            case .stop: return
            case .wait(let ms): await nap(ms)
            case .job(let job):
                let client = Self.client(job.receipts[0].request.url)
                defer { finished(client) }
                var attempts = job.attempts
                for (i, receipt) in job.receipts.enumerated() {
                    if stopping {
                        state.withLock { $0.counts.pending -= job.receipts.count - i }
                        return
                    }
                    let outcome = await send(receipt)
                    attempted(client, taken: outcome != .again)
                    if outcome == .again && attempts < retries {
                        retry(SimReceiptJob(due: 0, receipts: Array(job.receipts[i...]), attempts: attempts))
                        break
                    }
                    attempts = 0
                    state.withLock { s in
                        s.counts.pending -= 1
                        if outcome == .taken { s.counts.sent += 1 } else { s.counts.failed += 1 }
                    }
                }
            }
        }
    }

    /// Sleeps `ms`, in slices of at most 20 ms so ``stop()`` is not kept waiting.
    private func nap(_ ms: Int64) async {
        var left = ms
        while left > 0 && !stopping {
            try? await Task.sleep(for: .milliseconds(min(20, left)))
            left -= 20
        }
    }

    private enum Outcome { case taken, refused, again }

    /// One attempt at a receipt. Like the real gateways: a receipt the client did not take (no answer, 5xx; for
    /// Jasmin anything but `ACK/Jasmin`) is tried again; a 4xx other than Jasmin's is final (the client refused it).
    private func send(_ receipt: SimReceipt) async -> Outcome {
        guard let response = try? await engine.perform(receipt.request) else { return .again }
        if receipt.needsJasminAck {
            if response.bodyText == "ACK/Jasmin" { return .taken }
            return response.status == 404 ? .refused : .again  // Jasmin's DLRThrower gives up on 404
        }
        if (200...299).contains(response.status) { return .taken }
        return (400...499).contains(response.status) ? .refused : .again
    }
}

/// Queue mode (`--pass-on-rate N`): the gateway accepts requests at any rate and passes messages on to the
/// handsets at N per second, first in first out, like Kannel's store in front of a slow SMSC link.
///
/// A message's pass-on time is fixed when it is accepted (the queue is FIFO at a constant pace): the later of
/// now and the previous pass-on plus 1/N s. Its receipts (smsc-accepted, then the final one) are sent then. A
/// message whose request carried a validity period (Kannel `validity`, Jasmin `validity-period`, minutes; generic
/// `validity_seconds`) and whose turn would come after it ends is dropped from the queue at its validity end and
/// gets an expired receipt instead, without taking a turn. Every pass-on and expiry is recorded with its time
/// (`GET /sim/passed-on`: `<ref> <unix ms> passed|expired` lines) so a test can check what reached a handset when.
final class SimHandsetQueue: Sendable {
    struct Record: Sendable {
        var ref: String
        /// Wall-clock ms since the epoch.
        var at: Int64
        var expired: Bool
    }

    struct Slot: Sendable {
        /// On the sim's monotonic clock (``SimFaults/elapsedMillis``), when its receipts are due.
        var due: Int64
        var expired: Bool
    }

    private struct State {
        var next: Int64 = 0
        var records: [Record] = []
    }

    let rate: Double
    private let state = SimLock(State())

    init(rate: Double) { self.rate = rate }

    /// Takes a message into the queue at `now` (monotonic) / `wallNow` (epoch ms); `validForMillis` from its request.
    func enqueue(ref: String, now: Int64, wallNow: Int64, validForMillis: Int64?) -> Slot {
        state.withLock { s in
            let turn = max(now, s.next)
            if let v = validForMillis, turn > now + v {
                s.records.append(Record(ref: ref, at: wallNow + v, expired: true))
                return Slot(due: now + v, expired: true)
            }
            s.next = turn + Int64((1000 / rate).rounded())
            s.records.append(Record(ref: ref, at: wallNow + (turn - now), expired: false))
            return Slot(due: turn, expired: false)
        }
    }

    /// Records so far (those in the future too: their time is fixed).
    var records: [Record] { state.withLock { $0.records } }

    func reset() { state.withLock { $0.records.removeAll() } }

    /// `(passed on, expired, still queued)` at `wallNow`.
    func counts(wallNow: Int64) -> (passed: Int, expired: Int, queued: Int) {
        state.withLock { s in
            var p = 0, e = 0, q = 0
            for r in s.records {
                if r.at > wallNow { q += 1 } else if r.expired { e += 1 } else { p += 1 }
            }
            return (p, e, q)
        }
    }

    func text() -> String {
        records.map { "\($0.ref) \($0.at) \($0.expired ? "expired" : "passed")\n" }.joined()
    }
}
