import Foundation
import LoaCarriers
import LoaCore
import LoaStore
import Synchronization

/// What a finished request brings: its outcomes recorded, the carrier's health and pace told, failover.
extension Dispatcher {
    /// One request finished: `outcomes[i]` is `messages[i]`'s. The breaker and the pacer see one event per
    /// request (a batch's whole-request failure is one failure, not a hundred); identical permanent answers
    /// are counted per message.
    func finish(_ messages: [OutgoingMessage], _ outcomes: [GatewayOutcome]) {
        let events = state.withLock { s -> Events in finishLocked(&s, messages[...], outcomes[...]) }
        worker.wake()
        log(events, carrier: messages.first?.carrier)
    }

    /// Answers of single-message requests, one request each (`messages[i]` answered by `outcomes[i]`): recorded
    /// under one lock, with one wake-up. The breaker, the pacer and the identical-answer count see each request as
    /// ``finish(_:_:)`` would show it alone, in the order given.
    func finish(singles messages: [OutgoingMessage], _ outcomes: [GatewayOutcome]) {
        guard !messages.isEmpty else { return }
        let events = state.withLock { s -> [(Events, String)] in
            var changed: [(Events, String)] = []
            for i in messages.indices {
                let e = finishLocked(&s, messages[i...i], outcomes[i...i])
                if e.breaker.map({ $0.0 != $0.1 }) == true || e.paused != nil { changed.append((e, messages[i].carrier)) }
            }
            return changed
        }
        worker.wake()
        for (e, carrier) in events { log(e, carrier: carrier) }
    }

    /// The diagnostics of what a finished request changed: the breaker's moves, a pause.
    private func log(_ events: Events, carrier: String?) {
        guard let carrier else { return }
        if let (before, after) = events.breaker, before != after {
            // Operators see the breaker move, with its cause, in the diagnostics as well as in /metrics and `loa carriers`.
            if after == .open {
                if let refusal = events.authRefused {
                    logger.error("carrier breaker opened: the gateway refuses Loa's credentials; its messages wait",
                                 ["carrier.name": carrier, "breaker.from": before.rawValue, "cause": refusal, "cause.class": "unauthorized"])
                } else {
                    logger.warning("carrier breaker opened: its messages wait",
                                   ["carrier.name": carrier, "breaker.from": before.rawValue, "cause": events.cause ?? "unknown",
                                    "cause.class": events.causeClass ?? "unknown"])
                }
            } else {
                logger.notice(after == .closed ? "carrier breaker closed: its messages go again" : "carrier breaker half-open: probing the gateway",
                              ["carrier.name": carrier, "breaker.from": before.rawValue])
            }
        }
        if let paused = events.paused {
            logger.warning("carrier paused: identical permanent answers in a row; its messages wait until `loa carriers resume`",
                           ["carrier.name": carrier, "reason": paused])
        }
    }

    /// What a finished request changed, for the log lines written outside the lock.
    struct Events {
        var breaker: (CircuitBreaker.State, CircuitBreaker.State)?
        var cause: String?
        /// The class of the answer that opened the breaker (``answerClass(_:)``).
        var causeClass: String?
        var authRefused: String?
        /// The carrier paused after identical permanent answers with this request (the reason).
        var paused: String?
    }

    /// Records one finished request under the state lock.
    func finishLocked(_ s: inout State, _ messages: ArraySlice<OutgoingMessage>, _ outcomes: ArraySlice<GatewayOutcome>) -> Events {
        let now = clock.now()
        var events = Events()
        guard let carrier = messages.first?.carrier else { return events }
        let before = s.carriers[carrier]?.breaker.state
        var health: GatewayOutcome?
        var any = false
        for (i, m) in messages.enumerated() {
            // An adapter that broke the contract (too few outcomes) leaves the rest as temporary failures.
            let outcome = i < outcomes.count ? outcomes[outcomes.startIndex + i] : .temporary("adapter returned no outcome for this message")
            guard s.inFlight.removeValue(forKey: m.id) != nil else { continue }  // abandoned at the drain deadline
            any = true
            if case .accepted = outcome {} else { s.carriers[m.carrier]?.handoff?.withdrawn(m.id) }
            if outcome.isFenced || outcome.isHeldPastCutoff {
                // Never sent, and not the gateway's doing: no answer class, nothing for the breaker.
                s.finished.append(Finished(message: m, outcome: outcome, at: now, held: nil))
                continue
            }
            switch (health, outcome) {
            case (nil, _), (.accepted?, _), (.permanent?, _): health = outcome
            default: break
            }
            s.answers[carrier, default: [:]][Self.answerClass(outcome), default: 0] += 1
            var held: String?
            switch outcome {
            case .accepted:
                // Parts count when the gateway took them, not when they were offered (a refused request sent none).
                s.segmentsSent[carrier, default: 0] += Int64(m.segments)
                s.carriers[carrier]?.identical.accepted()
            case .permanent(let d):
                if let reason = s.carriers[carrier]?.identical.pausedReason {
                    held = reason
                } else if s.carriers[carrier]?.identical.permanent(d) == true {
                    events.paused = s.carriers[carrier]?.identical.pausedReason
                }
            default: break
            }
            s.finished.append(Finished(message: m, outcome: outcome, at: now, held: held))
        }
        guard any else { return events }
        s.carriers[carrier]?.pacer.finished()
        guard let health else { return events }
        switch health {
        case .accepted, .permanent:
            s.carriers[carrier]?.breaker.succeeded()   // the gateway answered
            s.authRefused[carrier] = nil
        case .temporary(let d), .unavailable(let d), .ambiguous(let d):
            s.lastFailure[carrier] = d
            s.carriers[carrier]?.breaker.failed(now: now)
        case .unauthorized(let d):
            // No retry soon can change a refusal of the credentials: the breaker opens at once, and probes after
            // its cooldown (a fixed password is found without a restart of the campaign).
            s.lastFailure[carrier] = d
            s.authRefused[carrier] = d
            s.carriers[carrier]?.breaker.trip(now: now)
        case .throttled(let retryAfter, _):
            // Throttling means the gateway is up: the breaker closes, the pacer slows the limit it signals.
            s.carriers[carrier]?.breaker.succeeded()
            s.carriers[carrier]?.handoff?.throttled(at: now)
            s.authRefused[carrier] = nil
            s.carriers[carrier]?.pacer.throttled(retryAfterSeconds: retryAfter, now: now)
        }
        let after = s.carriers[carrier]?.breaker.state
        if after == .open, before != .open {
            s.breakerCause[carrier] = s.lastFailure[carrier]
            events.causeClass = Self.answerClass(health)
        }
        if let before, let after { events.breaker = (before, after) }
        events.cause = s.breakerCause[carrier]
        if after == .open, case .unauthorized = health { events.authRefused = s.authRefused[carrier] }
        return events
    }

    /// The class name of an answer, for the per-class counters.
    static func answerClass(_ o: GatewayOutcome) -> String {
        switch o {
        case .accepted: "accepted"
        case .temporary: "temporary"
        case .throttled: "throttled"
        case .permanent: "permanent"
        case .unavailable: "unavailable"
        case .ambiguous: "ambiguous"
        case .unauthorized: "unauthorized"
        }
    }

    /// Failover: a campaign that allows it moves queued messages off a carrier that is down (breaker open) to
    /// another allowed carrier whose breaker is closed. Moved messages are sent there; nothing
    /// is sent twice (only `queued` messages move).
    func failover(active: [ActiveCampaign], now: UnixMillis) {
        let candidates = active.filter { $0.failover && $0.state == .running && $0.deadlineAt > now }
        guard !candidates.isEmpty else { return }
        let health = state.withLock { s in s.carriers.mapValues(\.breaker.state) }
        for c in candidates {
            let allowed = c.allowedCarriers.isEmpty ? carriers.map(\.name) : c.allowedCarriers
            let up = allowed.filter { health[$0] == .closed && adapters[$0] != nil }
            guard let target = up.first else { continue }
            // Only while the breaker is open: half-open lets the carrier's own probes through.
            for down in c.carriers where health[down] == .open {
                guard down != target, let downState = health[down] else { continue }
                do {
                    let moved = try store.reroute(campaign: c.id, from: down, to: target, limit: 2_000,
                                                  reason: "carrier \(down) is down (breaker \(downState.rawValue))")
                    if moved > 0 {
                        logger.notice("failover: queued messages moved", ["campaign.id": c.id, "carrier.name": down, "to": target, "count": "\(moved)"])
                    }
                } catch {
                    logger.error("failover failed", ["campaign.id": c.id, "error": "\(error)"])
                }
            }
        }
    }

    func recordFinished(_ finished: [Finished], active: [ActiveCampaign]) {
        let deadlines = Dictionary(active.map { ($0.id, $0.deadlineAt) }, uniquingKeysWith: { a, _ in a })
        let outcomes = finished.map { f -> SendOutcome in
            let m = f.message
            func temporary(_ detail: String, retryAfter: Double?) -> SendResult {
                let deadline = deadlines[m.campaign] ?? f.at
                switch retry.decide(attempt: m.attempt, id: m.id, now: f.at, deadline: deadline,
                                    retryAfterMillis: retryAfter.map { Int64(($0 * 1000).clampedInt(0...86_400_000)) }) {
                case .retry(let at): return .retry(notBefore: at, detail: detail)
                case .giveUp: return .failed(detail: "gave up after \(m.attempt) attempts: \(detail)")
                case .pastDeadline: return .expired(detail: "deadline reached before a retry: \(detail)")
                }
            }
            let result: SendResult
            if let held = f.held, case .permanent(let d) = f.outcome {
                // The carrier is paused: this answer is the same mistake, not this recipient's; it waits for the resume.
                return SendOutcome(m, result: .requeue(notBefore: f.at + 1000, detail: "carrier \(m.carrier) paused (\(held)): \(d)"))
            }
            if f.outcome.isHeldPastCutoff {
                // It never left: it waited at the carrier's pace past its window's close or its deadline. Back to the
                // queue for the next window, the attempt refunded, or expired past the deadline.
                let deadline = deadlines[m.campaign] ?? f.at
                return SendOutcome(m, result: f.at >= deadline ? .expired(detail: "deadline reached before its request left: \(GatewayOutcome.heldPastCutoffDetail)")
                                                                 : .requeue(notBefore: f.at, detail: GatewayOutcome.heldPastCutoffDetail))
            }
            if f.outcome.isFenced {
                // It never left: back to the queue at once, the attempt refunded. If a survivor already settled it
                // as `unknown`, this requeue is stale and the store ignores it (``MessageLifecycle``).
                return SendOutcome(m, result: .requeue(notBefore: f.at, detail: GatewayOutcome.fencedDetail))
            }
            switch f.outcome {
            case .accepted(let gid, let detail, let parts): result = .accepted(gatewayID: gid, detail: detail, partIDs: parts)
            case .permanent(let d): result = .failed(detail: d)
            case .temporary(let d): result = temporary(d, retryAfter: nil)
            case .unavailable(let d):
                // Nothing was sent: wait (the breaker holds the carrier's traffic meanwhile), until the deadline.
                let at = f.at + max(retry.baseMillis / 2, 500)
                let deadline = deadlines[m.campaign] ?? f.at
                result = at >= deadline ? .expired(detail: "deadline reached while the gateway was unreachable: \(d)")
                    : .requeue(notBefore: at, detail: d)
            case .ambiguous(let d):
                // The gateway may have it: never resent. A receipt may still settle it.
                result = .unknown(detail: "\(d); not resent")
            case .throttled(let ra, let d):
                // "Not now" is not a failed attempt: back to the queue with the attempt refunded (requeue), waiting
                // what the rate-limit headers said (else a second; half of one where the carrier states its request
                // limit, which paces the retry anyway), until the deadline.
                let fallback = carrierConfig[m.carrier]?.requestsPerSecond != nil ? 0.5 : 1
                let at = f.at + max(Int64(((ra ?? fallback) * 1000).clampedInt(0...86_400_000)), 500)  // a gateway's wait, bounded to a day
                let deadline = deadlines[m.campaign] ?? f.at
                result = at >= deadline ? .expired(detail: "deadline reached while throttled: \(d)") : .requeue(notBefore: at, detail: "throttled: \(d)")
            case .unauthorized(let d):
                // Nothing was sent: the message waits without spending an attempt while the breaker holds the carrier.
                let at = f.at + max(retry.baseMillis / 2, 500)
                let deadline = deadlines[m.campaign] ?? f.at
                result = at >= deadline ? .expired(detail: "deadline reached while the gateway refused Loa's credentials: \(d)")
                    : .requeue(notBefore: at, detail: "gateway refuses Loa's credentials: \(d)")
            }
            return SendOutcome(m, result: result)
        }
        countRequeues(outcomes)
        let fenced = finished.reduce(0) { $0 + ($1.outcome.isFenced ? 1 : 0) }
        if fenced > 0 {
            logger.warning("messages not sent: this node's cluster lease had ended before their requests left (fenced); requeued, unless a survivor already settled them unknown",
                           ["count": "\(fenced)", "store.node": lease?.node ?? ""])
        }
        // Not waited for: the outcomes join the next claim's transaction. If it fails (the store is down) they are
        // kept and recorded again until the store takes them (``retryUnrecorded(now:)``), never dropped.
        store.recordSoon(outcomes) { [self] error in unrecordedFailed(outcomes, error) }
    }

    func abandonInFlight() {
        let left = state.withLock { s -> [OutgoingMessage] in
            let l = Array(s.inFlight.values)
            s.inFlight.removeAll()
            return l
        }
        logger.warning("drain deadline passed; requests still in flight are recorded unknown", ["count": "\(left.count)"])
        try? store.record(left.map { SendOutcome($0, result: .unknown(detail: "daemon stopped before the gateway answered; not resent")) })
    }
}

/// Answers gathered on the engine thread during one of its rounds (``Dispatcher/roundAnswers``).
struct RoundAnswers {
    var messages: [OutgoingMessage] = []
    var outcomes: [GatewayOutcome] = []

    mutating func append(_ message: OutgoingMessage, _ outcome: GatewayOutcome) {
        messages.append(message)
        outcomes.append(outcome)
    }

    /// Everything gathered, leaving this empty.
    mutating func take() -> RoundAnswers {
        defer { self = RoundAnswers() }
        return self
    }
}

extension Dispatcher: CompletionRound {
    /// The engine ended a round that answered some of this dispatcher's requests: their answers are recorded at once.
    public func roundEnded() {
        let round = roundAnswers.withLock { $0.take() }
        finish(singles: round.messages, round.outcomes)
    }
}
