import Foundation
import LoaCore
import LoaStore

/// Send outcomes whose recording failed, kept until the store takes them (issue 21: the database as a dependency
/// that fails). Bounded: nothing is claimed while any wait here (``Dispatcher/mayClaim``), so it holds at most what
/// was in flight when the store failed (each carrier's `max_in_flight` requests, each of one message or a batch).
struct Unrecorded {
    var outcomes: [SendOutcome] = []
    /// When to try again (the dispatcher's clock); doubled from 250 ms up to 2 s while the store refuses.
    var retryAt: UnixMillis = 0
    var backoff: Int64 = 250
}

/// The store's health as the dispatcher sees it: a failure is logged once when an outage starts (with what failed),
/// and once when the store works again, instead of once per claim and per round.
struct StoreOutage {
    var since: UnixMillis?
    var failures = 0
}

extension Dispatcher {
    /// Outcomes waiting to be recorded again.
    var unrecordedCount: Int { unrecorded.withLock { $0.outcomes.count } }

    /// A recording failed (on the store's writer): its outcomes wait for the next try on the dispatch thread.
    func unrecordedFailed(_ outcomes: [SendOutcome], _ error: any Error) {
        let now = clock.now()
        unrecorded.withLock { u in
            if u.outcomes.isEmpty { u.retryAt = now + u.backoff }
            u.outcomes.append(contentsOf: outcomes)
        }
        storeFailed(error, doing: "recording outcomes", ["count": "\(outcomes.count)"])
        worker.wake()
    }

    /// Records the waiting outcomes again once their time came. When a whole batch fails, one outcome alone is
    /// tried: if the store takes it, the store works and the batch holds an outcome it refuses for good; the rest
    /// are then recorded one by one, and one refused alone is logged and left (its message stays `sending` and is
    /// reported `unknown` at the next start, never resent). Otherwise the store is still down: wait longer.
    func retryUnrecorded(now: UnixMillis) {
        let batch = unrecorded.withLock { u -> [SendOutcome] in
            guard !u.outcomes.isEmpty, now >= u.retryAt else { return [] }
            defer { u.outcomes.removeAll() }
            return u.outcomes
        }
        guard !batch.isEmpty else { return }
        do {
            try store.record(batch)
        } catch {
            do {
                try store.record([batch[0]])
            } catch {
                storeFailed(error, doing: "recording outcomes", ["count": "\(batch.count)"])
                unrecorded.withLock { u in
                    u.outcomes.insert(contentsOf: batch, at: 0)
                    u.backoff = min(2_000, u.backoff * 2)
                    u.retryAt = now + u.backoff
                }
                return
            }
            for o in batch.dropFirst() {
                do {
                    try store.record([o])
                } catch {
                    logger.error("an outcome the store refuses was not recorded: its message stays sending, reported unknown at the next start",
                                 ["message.id": "\(o.id)", "error": "\(error)"])
                }
            }
        }
        unrecorded.withLock { $0.backoff = 250 }
        logger.notice("outcomes recorded after the store failed", ["count": "\(batch.count)"])
        storeWorked()
    }

    /// At the drain deadline of a stop: what is still not recorded stays `sending`; the next start reports it
    /// `unknown` (never resent).
    func giveUpUnrecorded() {
        let left = unrecorded.withLock { u -> Int in
            defer { u.outcomes.removeAll() }
            return u.outcomes.count
        }
        if left > 0 {
            logger.error("stopping with outcomes the store did not take: their messages are reported unknown at the next start, never resent",
                         ["count": "\(left)"])
        }
    }

    /// A store call failed: logged once per outage, with what failed; dispatch pauses meanwhile (claims fail, and
    /// none is tried while outcomes wait to be recorded).
    func storeFailed(_ error: any Error, doing what: String = "reading the campaigns", _ metadata: [String: String] = [:]) {
        let now = clock.now()
        let first = outage.withLock { o -> Bool in
            defer { o.failures += 1 }
            if o.since == nil { o.since = now }
            return o.failures == 0
        }
        guard first else { return }
        var m = metadata
        m["error"] = "\(error)"
        m["failed"] = what
        logger.error("store unavailable; dispatch paused until it answers again (outcomes are kept and recorded then)", m)
    }

    /// A store call worked: an outage, if there was one, is over.
    func storeWorked() {
        let now = clock.now()
        let ended = outage.withLock { o -> (Int64, Int)? in
            guard let since = o.since else { return nil }
            defer { o = StoreOutage() }
            return (now - since, o.failures)
        }
        if let (millis, failures) = ended {
            logger.notice("store available again; dispatch goes on", ["outage_ms": "\(millis)", "failures": "\(failures)"])
        }
    }
}
