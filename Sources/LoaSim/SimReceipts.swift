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
}

/// Sends receipts through one ``CurlEngine`` from a bounded queue.
///
/// `concurrency` worker tasks take due jobs in due order (a job is queued by its due time; nearly always at the
/// end) and send each job's receipts one after the other. The queue holds at most
/// `capacity` receipts; a job that does not fit is dropped whole and counted in `dropped`. Workers only
/// await (libcurl runs on the engine's own thread), so they never block the shared executor.
/// A receipt is retried `retries` times, `retryMs` apart, while the client does not answer or answers 5xx
/// (Jasmin: unless answered `ACK/Jasmin`); other shapes count any 2xx as sent and any 4xx as refused. After ``stop()`` nothing more is sent.
final class SimReceiptSender: Sendable {
    struct Counts: Sendable { var sent = 0, failed = 0, dropped = 0, pending = 0, retries = 0 }

    private struct State {
        var queue: [SimReceiptJob] = []
        var head = 0
        var counts = Counts()
        var stopping = false
        var workers = 0
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
            // In due order: queue mode's receipts for a message that expires in the queue are due before those
            // of messages queued ahead of it (every other job comes in due order: the search stops at once).
            var i = s.queue.count
            while i > s.head && s.queue[i - 1].due > job.due { i -= 1 }
            s.queue.insert(job, at: i)
            s.counts.pending += job.receipts.count
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

    private func next() -> Next {
        let now = clock()
        return state.withLock { s in
            if s.stopping { return .stop }
            guard s.head < s.queue.count else { return .wait(20) }
            let job = s.queue[s.head]
            if job.due > now { return .wait(min(20, job.due - now)) }
            s.head += 1
            if s.head > 1024 && s.head * 2 > s.queue.count {
                s.queue.removeFirst(s.head)
                s.head = 0
            }
            return .job(job)
        }
    }

    private var stopping: Bool { state.withLock { $0.stopping } }

    private func work() async {
        while true {
            switch next() {
            case .stop: return
            case .wait(let ms): await nap(ms)
            case .job(let job):
                for (i, receipt) in job.receipts.enumerated() {
                    if stopping {
                        state.withLock { $0.counts.pending -= job.receipts.count - i }
                        return
                    }
                    let ok = await send(receipt)
                    state.withLock { s in
                        s.counts.pending -= 1
                        if ok { s.counts.sent += 1 } else { s.counts.failed += 1 }
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

    /// One receipt with its retries; true when the client took it.
    private func send(_ receipt: SimReceipt) async -> Bool {
        // Like the real gateways: a receipt the client did not take (no answer, 5xx; for Jasmin anything but
        // `ACK/Jasmin`) is tried again; a 4xx other than Jasmin's is final (the client refused it).
        for attempt in 1...(1 + retries) {
            if attempt > 1 {
                state.withLock { $0.counts.retries += 1 }
                await nap(Int64(retryMs))
                if stopping { return false }
            }
            guard let response = try? await engine.perform(receipt.request) else { continue }
            if receipt.needsJasminAck {
                if response.bodyText == "ACK/Jasmin" { return true }
                if response.status == 404 { return false }  // Jasmin's DLRThrower gives up on 404
            } else if (200...299).contains(response.status) {
                return true
            } else if (400...499).contains(response.status) {
                return false
            }
        }
        return false
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
