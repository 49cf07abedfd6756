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
    /// Messages whose outcome the store refused for good: they stay `sending` (reported `unknown` at the next start)
    /// and may have reached the gateway, so a release of unsent claims must never take them.
    var refused: Set<Int64> = []
}

/// The store's health as the dispatcher sees it: a failure is logged once when an outage starts (with what failed),
/// and once when the store works again, instead of once per claim and per round.
struct StoreOutage {
    var since: UnixMillis?
    var failures = 0
    /// A claim failed: it may have committed with its answer lost (``Dispatcher/releaseUnsentClaims()``). Kept
    /// across the end of the outage, until the release is done.
    var claimUnsure = false
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
                    unrecorded.withLock { _ = $0.refused.insert(o.id) }
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
            defer { o.since = nil; o.failures = 0 }
            return (now - since, o.failures)
        }
        if let (millis, failures) = ended {
            logger.notice("store available again; dispatch goes on", ["outage_ms": "\(millis)", "failures": "\(failures)"])
        }
    }
}

extension Dispatcher {
    /// A claim failed. When the server died while the claim's COMMIT was on its way (a restart, a failover), the
    /// claim may have committed with its answer lost: its messages then say `sending` under this node, and this
    /// dispatcher never had them. They are released once the store answers again (``releaseUnsentClaims()``).
    func claimFailed(_ error: any Error, campaign: String, carrier: String) {
        outage.withLock { $0.claimUnsure = true }
        storeFailed(error, doing: "claim", ["campaign.id": campaign, "carrier.name": carrier])
    }

    /// After a failed claim, once a store call worked again: the messages of claims that ended with the connection
    /// lost, still `sending` under this node and not held by this dispatcher, go back to the queue
    /// (``MessageStore/releaseUnsentClaims(epoch:holding:)``), fenced by the lease. Safe because such a message never reached an adapter: every claim the dispatcher received is in flight
    /// from the moment it returns (``launch(_:sender:deadline:until:carrier:sizes:term:now:)`` on this thread, before any
    /// request is built) until its answer, then waits to be recorded (``held()``); claims happen on this thread only,
    /// so none starts meanwhile. Without it they stayed `sending` until the node's next start (then `unknown`), and
    /// the campaign could not complete before it.
    func releaseUnsentClaims() {
        guard outage.withLock({ $0.claimUnsure && $0.since == nil }) else { return }
        let epoch = lease?.heldEpoch
        let released: Int?
        do {
            released = try store.releaseUnsentClaims(epoch: epoch) { [self] in held() }
        } catch {
            storeFailed(error, doing: "releasing unsent claims")
            return
        }
        outage.withLock { $0.claimUnsure = false }
        if let released {
            if released > 0 {
                logger.notice("claims the store may have committed unacknowledged were released: their messages never reached a gateway; back in the queue",
                              ["count": "\(released)", "store.node": lease?.node ?? "", "epoch": "\(epoch ?? 0)"])
                state.withLock { $0.workHint = true }
            }
        } else {
            logger.warning("unsent claims not released: this node's lease ended; they are settled unknown when it holds one again, never resent",
                           ["store.node": lease?.node ?? "", "epoch": "\(epoch ?? 0)"])
        }
    }

    /// The messages this dispatcher holds: in flight (handed to an adapter or its engine, answers gathered in an
    /// engine round included), answered and not yet taken to be recorded, waiting to be recorded again, or refused
    /// by the store for good. Called on the dispatch thread, which alone moves messages out of `finished`.
    func held() -> Set<Int64> {
        var ids = state.withLock { s in Set(s.inFlight.keys).union(s.finished.lazy.map(\.message.id)) }
        unrecorded.withLock { u in
            ids.formUnion(u.outcomes.lazy.map(\.id))
            ids.formUnion(u.refused)
        }
        return ids
    }
}
