import Foundation
import LoaCore
import LoaStore

/// The dispatcher's measurements for `/metrics` (``SendStats``): each request's duration, and the messages each
/// round of outcomes puts back in the queue. Kept apart from the dispatch code: the dispatcher calls these in
/// one line where a request ends and where outcomes are recorded.
extension Dispatcher {
    /// A request of `carrier` started at `start` has its answer (or its failure).
    func requestFinished(_ carrier: String, since start: ContinuousClock.Instant) {
        let d = (ContinuousClock.now - start).components
        let seconds = Double(d.seconds) + Double(d.attoseconds) / 1e18
        sendStats.withLock { $0.request(carrier: carrier, seconds: seconds) }
    }

    /// Counts the retries (an attempt spent) and requeues (none spent) among outcomes about to be recorded.
    func countRequeues(_ outcomes: [SendOutcome]) {
        var retries: [String: Int64] = [:]
        var requeues: [String: Int64] = [:]
        for o in outcomes {
            guard let carrier = o.claimed?.carrier else { continue }
            switch o.result {
            case .retry: retries[carrier, default: 0] += 1
            case .requeue: requeues[carrier, default: 0] += 1
            default: break
            }
        }
        guard !retries.isEmpty || !requeues.isEmpty else { return }
        sendStats.withLock { s in
            for (c, n) in retries { s.retried(carrier: c, n) }
            for (c, n) in requeues { s.requeued(carrier: c, n) }
        }
    }
}
