/// What the dispatcher measures of its requests, per carrier, for `/metrics`. Pure; the dispatcher holds it in a
/// lock of its own (not its state lock: a scrape never waits for a round of decisions).
public struct SendStats: Sendable, Equatable {
    /// Seconds from a request's start in Loa to its answer (or its failure), per carrier: the wait for a
    /// connection, the exchange and the answer's classification.
    public private(set) var requestSeconds: [String: LatencyHistogram] = [:]
    /// Messages given another attempt after a temporary failure (the attempt spent), per carrier.
    public private(set) var retries: [String: Int64] = [:]
    /// Messages put back in the queue without spending an attempt (throttled, gateway unreachable, credentials
    /// refused, carrier paused), per carrier.
    public private(set) var requeues: [String: Int64] = [:]

    public init() {}

    public mutating func request(carrier: String, seconds: Double) {
        requestSeconds[carrier, default: LatencyHistogram(bounds: LatencyHistogram.requestBounds)].observe(seconds: seconds)
    }

    public mutating func retried(carrier: String, _ n: Int64 = 1) { retries[carrier, default: 0] += n }
    public mutating func requeued(carrier: String, _ n: Int64 = 1) { requeues[carrier, default: 0] += n }

    /// A carrier's request histogram (empty when it made none).
    public func requests(_ carrier: String) -> LatencyHistogram {
        requestSeconds[carrier] ?? LatencyHistogram(bounds: LatencyHistogram.requestBounds)
    }
}

/// What receipts did, per carrier, for `/metrics`: how long final receipts took, which final state they gave,
/// and how many never came in time. Pure; the store holds it in a lock and adds to it after each commit.
public struct ReceiptStats: Sendable, Equatable {
    /// The final states a receipt can give a message (``ReceiptStatus`` → ``MessageState``).
    public static let finalStates = ["delivered", "failed", "rejected", "expired"]

    /// Seconds from the gateway's acceptance to the final receipt, per carrier.
    public private(set) var latency: [String: LatencyHistogram] = [:]
    /// Messages a receipt made final, per carrier and final state.
    public private(set) var settled: [String: [String: Int64]] = [:]
    /// Messages whose final receipt did not come in `receipt_timeout_hours` (made `unknown`), per carrier.
    public private(set) var overdue: [String: Int64] = [:]

    public init() {}

    /// A receipt made a message of `carrier` final in `state`, `millis` after the gateway accepted it.
    public mutating func settled(carrier: String, state: String, millis: Int64) {
        latency[carrier, default: LatencyHistogram()].observe(millis: millis)
        settled[carrier, default: [:]][state, default: 0] += 1
    }

    public mutating func overdue(carrier: String, _ n: Int64 = 1) { overdue[carrier, default: 0] += n }

    /// Final receipts over every carrier.
    public var count: Int64 { latency.values.reduce(0) { $0 + $1.count } }

    /// A carrier's latency histogram (empty when no receipt came).
    public func latency(_ carrier: String) -> LatencyHistogram { latency[carrier] ?? LatencyHistogram() }
}
