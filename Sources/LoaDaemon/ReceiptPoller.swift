import Foundation
import LoaCarriers
import LoaCore
import LoaStore
import Synchronization

/// Receipts by polling: asks each generic carrier's status API (`poll`) about its messages still `sent`, and
/// applies the answers as receipts through the store path the receipt endpoint uses.
///
/// One ``Worker`` thread for all polling carriers: store calls block, so they never run on Swift's shared
/// executor, and a poll waits for its answer (bounded by the carrier's `timeout_seconds`) on this thread only.
/// Bounded per carrier: at most `poll.max_requests` requests per `poll.interval_seconds`, one at a time, the
/// requests an aggregate callback asks for included (those beyond the budget wait for the next interval).
final class ReceiptPoller: Sendable {
    struct Carrier {
        let name: String
        let adapter: GenericHTTPAdapter
        let poll: GenericGatewaySpec.Poll
        var windowStart: UnixMillis = 0
        var used = 0
        var nextDue: UnixMillis = 0
    }

    private let store: Store
    private let clock: any TimeSource
    private let logger: Logger
    /// The carriers' budgets and the urgent polls.
    private struct State {
        var carriers: [Carrier]
        var urgent: [(carrier: String, messages: [(id: Int64, gatewayID: String)])] = []
    }
    private let state: Mutex<State>
    private let names: Set<String>
    /// The poll thread, woken by an urgent poll.
    private let worker = Worker(name: "loa-poll")

    /// Nil when no carrier polls.
    init?(store: Store, adapters: [String: any CarrierAdapter], clock: any TimeSource, logger: Logger) {
        let polling = adapters.values.compactMap { $0 as? GenericHTTPAdapter }.filter { $0.pollSpec != nil }.sorted { $0.name < $1.name }
        guard !polling.isEmpty else { return nil }
        self.store = store
        self.clock = clock
        self.logger = logger
        names = Set(polling.map(\.name))
        state = Mutex(State(carriers: polling.map { Carrier(name: $0.name, adapter: $0, poll: $0.pollSpec!) }))
    }

    func start() {
        worker.start { [self] _ in loop() }
    }

    /// Stops taking new polls and waits for the one under way (at most the carrier's timeout).
    func stop() {
        worker.stop()
    }

    /// Asks about `messages` of `carrier` as soon as its budget allows (an aggregate callback named their request).
    func pollNow(carrier: String, messages: [(id: Int64, gatewayID: String)]) {
        guard !messages.isEmpty, names.contains(carrier) else { return }
        state.withLock { $0.urgent.append((carrier, messages)) }
        worker.wake()
    }

    func polls(_ carrier: String) -> Bool { names.contains(carrier) }

    private func loop() {
        while !worker.isStopping {
            let now = clock.now()
            // The next thing to do: an urgent poll with budget left, or a carrier's regular poll.
            let (work, wake) = state.withLock { s -> ((index: Int, carrier: Carrier, messages: [(id: Int64, gatewayID: String)]?)?, UnixMillis) in
                var wake = UnixMillis.max
                for i in s.carriers.indices {
                    let interval = Int64(s.carriers[i].poll.interval * 1000)
                    if now >= s.carriers[i].windowStart + interval { s.carriers[i].windowStart = now; s.carriers[i].used = 0 }
                    let hasBudget = s.carriers[i].used < s.carriers[i].poll.requestsPerInterval
                    if hasBudget, let u = s.urgent.firstIndex(where: { $0.carrier == s.carriers[i].name }) {
                        return ((i, s.carriers[i], s.urgent.remove(at: u).messages), wake)
                    }
                    if hasBudget && now >= s.carriers[i].nextDue { return ((i, s.carriers[i], nil), wake) }
                    wake = min(wake, hasBudget ? s.carriers[i].nextDue : s.carriers[i].windowStart + interval)
                }
                return (nil, wake)
            }
            guard let work else {
                worker.wait(until: .after(seconds: Double(min(wake, now + 60_000) - now) / 1000))
                continue
            }
            var c = work.carrier
            let spent = round(&c, now: now, urgent: work.messages)
            state.withLock { s in
                s.carriers[work.index].used += spent.requests
                if work.messages == nil { s.carriers[work.index].nextDue = now + Int64(c.poll.interval * 1000) }
                if let rest = spent.leftOver, !rest.isEmpty { s.urgent.append((c.name, rest)) }
            }
        }
    }

    /// One round for a carrier: its due messages (or the urgent ones), asked about within the budget left.
    /// Returns the requests made and the urgent messages left for the next interval.
    private func round(_ c: inout Carrier, now: UnixMillis, urgent: [(id: Int64, gatewayID: String)]?) -> (requests: Int, leftOver: [(id: Int64, gatewayID: String)]?) {
        let budget = c.poll.requestsPerInterval - c.used
        var candidates: [(id: Int64, gatewayID: String)]
        if let urgent {
            candidates = urgent
        } else {
            let limit = c.poll.by == "request" ? min(budget * 1000, 20_000) : budget * c.poll.idsPerRequest
            do {
                candidates = try store.pollCandidates(carrier: c.name, sentFrom: now - Int64(c.poll.maxAge * 1000),
                                                      sentTo: now - Int64(c.poll.after * 1000),
                                                      polledBefore: now - Int64(c.poll.interval * 1000), limit: limit)
            } catch {
                logger.error("receipt poll: cannot read the store", ["carrier.name": c.name, "error": "\(error)"])
                return (0, nil)
            }
        }
        var batches = c.adapter.pollBatches(candidates)
        if batches.count > budget { batches.removeLast(batches.count - budget) }
        let asked = Set(batches.flatMap { $0.messages.map(\.id) })
        let leftOver = urgent.map { $0.filter { !asked.contains($0.id) } }
        var requests = 0
        for b in batches {
            if isStopping { break }
            requests += 1
            do { try store.markPolled(b.messages.map(\.id)) } catch {
                logger.error("receipt poll: cannot write the store", ["carrier.name": c.name, "error": "\(error)"])
                return (requests, leftOver)
            }
            let result = perform(b.request, engine: c.adapter.engine)
            switch result {
            case .failure(let e):
                logger.warning("receipt poll failed", ["carrier.name": c.name, "ids": "\(b.messages.count)",
                                                      "error": c.adapter.scrub("\(e)", [])])
            case .success(let r):
                let receipts = c.adapter.pollReceipts(status: r.status, body: r.body, for: b.messages)
                if !(200...299).contains(r.status) {
                    logger.warning("receipt poll answered \(r.status)", ["carrier.name": c.name, "ids": "\(b.messages.count)",
                                                                        "detail": c.adapter.scrub(r.bodyText, [])])
                }
                guard !receipts.isEmpty else { continue }
                do {
                    _ = try store.apply(receipts.map {
                        ReceiptUpdate(carrier: c.name, messageID: $0.messageID, status: $0.status, gatewayID: $0.gatewayID, detail: $0.detail)
                    })
                    logger.debug("receipt poll", ["carrier.name": c.name, "ids": "\(b.messages.count)", "receipts": "\(receipts.count)"])
                } catch {
                    logger.error("receipt poll: receipts not stored", ["carrier.name": c.name, "error": "\(error)"])
                }
            }
        }
        return (requests, leftOver)
    }

    private var isStopping: Bool { worker.isStopping }

    /// The request's answer, waited for on this thread (the engine's thread completes it).
    private func perform(_ request: HTTPRequest, engine: CurlEngine) -> Result<HTTPResponse, TransportError> {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        engine.start(request) { r in
            box.set(r)
            done.signal()
        }
        done.wait()
        return box.get() ?? .failure(.shutdown)
    }

    private final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Result<HTTPResponse, TransportError>?
        func set(_ v: Result<HTTPResponse, TransportError>) { lock.lock(); value = v; lock.unlock() }
        func get() -> Result<HTTPResponse, TransportError>? { lock.lock(); defer { lock.unlock() }; return value }
    }
}
