import Foundation
import LoaCarriers
import LoaCore
import LoaStore
import Synchronization

/// Moves queued messages to the gateways: claims what each carrier's limiter allows, sends through the
/// adapters, and records the outcomes in batches.
///
/// It runs on a ``Worker`` of its own (store calls block) and sleeps in its wait until the next token,
/// a finished request, new work or shutdown. The policy pieces it uses (``CarrierPacer``, ``CircuitBreaker``,
/// ``IdenticalFailures``, ``RetryPolicy``, ``MessageLifecycle``) are pure and tested on a manual clock; this
/// class only wires them to effects.
public final class Dispatcher: Sendable {
    public struct CarrierStatus: Sendable, Codable, Equatable {
        public var name: String
        public var configuredRate: Double
        public var maxInFlight: Int
        public var inFlight: Int
        /// Requests started per second over the last 10 seconds.
        public var currentRate: Double
        /// The rate the adaptive limiter allows now (below the configured one after throttling answers).
        public var allowedRate: Double
        public var breaker: CircuitBreaker.State
        /// Most messages per request (batch APIs), 1 otherwise.
        public var maxBatch: Int = 1
        /// Tokens in the carrier's bucket now (negative while long messages are being paid for).
        public var tokens: Int = 0
        /// SMS parts of the messages started since the daemon started.
        public var segmentsSent: Int64 = 0
        /// Requests started since the daemon started.
        public var requests: Int64 = 0
        /// Until when a throttling answer's Retry-After pauses the carrier (ms since the epoch, 0: not paused).
        public var pausedUntil: Int64 = 0
        /// Messages handed to the gateway that it has not passed on yet (no smsc-accepted, buffered or final
        /// receipt): what its queue holds of ours (``HandoffWindow``; 0 without `pace_from_receipts`).
        public var handoffOutstanding: Int = 0
        /// The gateway's pass-on pace learned from its receipts, messages per second (nil: not known yet, or
        /// `pace_from_receipts` is off).
        public var passOnRate: Double?
        /// `pace_from_receipts` is on, and receipts came (false while the gateway is silent: not limiting).
        public var handoffLimiting: Bool = false
        /// The stated request limit (`requests_per_second`), nil: none.
        public var requestsPerSecond: Double?
        /// The request rate the adaptive limiter allows now, when requests are limited or were throttled.
        public var allowedRequestRate: Double?
        /// Recipients per request a batch fills to (`batch.max` when the message rate allows it).
        public var batchTarget: Int = 1
        /// The fewest recipients per request (`batch.min`), 1: none.
        public var minBatch: Int = 1
        /// Why the breaker opened last (the failing answer), while it is not closed.
        public var breakerCause: String?
        /// The gateway refuses Loa's credentials: its answer, while that is the carrier's state.
        public var authRefused: String?
        /// Paused after identical permanent answers in a row: why (the answer); `loa carriers resume` ends it.
        public var pausedReason: String?
        /// Answers since start by class (accepted, temporary, throttled, permanent, unavailable, ambiguous,
        /// unauthorized), one per message.
        public var answers: [String: Int64] = [:]
    }

    private struct Finished {
        var message: OutgoingMessage
        var outcome: GatewayOutcome
        var at: UnixMillis
        /// The carrier is paused after identical permanent answers: this one waits instead of failing.
        var held: String?
    }

    private struct State {
        var pacers: [String: CarrierPacer]
        var breakers: [String: CircuitBreaker] = [:]
        /// The answer that last counted against each carrier's breaker.
        var lastFailure: [String: String] = [:]
        var breakerCause: [String: String] = [:]
        var authRefused: [String: String] = [:]
        var identical: [String: IdenticalFailures] = [:]
        var answers: [String: [String: Int64]] = [:]
        var finished: [Finished] = []
        var inFlight: [Int64: OutgoingMessage] = [:]
        var stopping = false
        var drainDeadline: UnixMillis = 0
        var workHint = true
        /// Started sends per carrier per second (epoch second → count), last 10 s.
        var started: [String: [Int64: Int]] = [:]
        /// The global cap over all carriers, in the carriers' units (nil: none).
        var global: TokenBucket?
        var segmentsSent: [String: Int64] = [:]
        var requests: [String: Int64] = [:]
        /// Per carrier with `pace_from_receipts`: what it holds of ours and its learned pass-on pace.
        var handoff: [String: HandoffWindow] = [:]
        /// Carriers whose last round was held by their handoff window: a pass-on receipt wakes the loop.
        var handoffHeld: Set<String> = []
    }

    private let store: any MessageStore
    private let adapters: [String: any CarrierAdapter]
    private let carriers: [LoaConfig.Carrier]
    private let receiptBase: [String: String]
    /// Carriers whose receipt URL carries each message's id (all but generic gateways).
    private let receiptPerMessage: Set<String>
    private let retry: RetryPolicy
    private let contactPolicy: ContactPolicy?
    private let receiptTimeoutSeconds: Double
    private let clock: any TimeSource
    private let logger: Logger
    private let state: Mutex<State>
    /// The dispatch thread; every change the loop must look at (an answer, new work, a receipt that frees a held
    /// carrier, the stop) wakes it.
    private let worker = Worker(name: "loa-dispatch")
    /// The most messages claimed per carrier per round (one transaction).
    private let claimBatch = 500
    private let maxBatch: [String: Int]
    private let carrierConfig: [String: LoaConfig.Carrier]

    public init(store: any MessageStore, adapters: [String: any CarrierAdapter], config: LoaConfig, clock: any TimeSource, logger: Logger) {
        self.store = store
        self.adapters = adapters
        self.carriers = config.carriers
        self.retry = config.retry
        self.contactPolicy = config.contactPolicy
        self.receiptTimeoutSeconds = config.receiptTimeoutSeconds
        self.clock = clock
        self.logger = logger
        var bases: [String: String] = [:]
        var perMessage = Set<String>()
        for c in config.carriers {
            let url = c.carrierKind.receiptURL(base: ReceiptURL.base(publicURL: config.publicURL, carrier: c.name, secret: c.receiptSecret))
            bases[c.name] = url.prefix
            if url.endsWithMessageID { perMessage.insert(c.name) }
        }
        receiptPerMessage = perMessage
        receiptBase = bases
        let batches = Dictionary(uniqueKeysWithValues: config.carriers.map { c in (c.name, max(1, adapters[c.name]?.maxBatch ?? 1)) })
        maxBatch = batches
        carrierConfig = Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, $0) })
        let now = clock.now()
        var initial = State(
            // max_in_flight counts requests; a batch is one request.
            pacers: Dictionary(uniqueKeysWithValues: config.carriers.map { c in
                (c.name, CarrierPacer(rate: c.rate, requestsPerSecond: c.requestsPerSecond, maxInFlight: c.maxInFlight,
                                      batchMax: batches[c.name]!, batchMin: c.batchMin, now: now))
            }),
            breakers: Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, CircuitBreaker()) }))
        initial.identical = Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, IdenticalFailures(threshold: $0.pauseAfterIdenticalFailures)) })
        if let g = config.globalRate { initial.global = TokenBucket(rate: g, burst: TokenBucket.burst(rate: g, seconds: 0.1), now: now) }
        for c in config.carriers where c.paceFromReceipts {
            // The probe before any pace is known: two seconds at the configured rate (or max_in_flight, if more).
            let probe = max(c.maxInFlight, Int(min(c.rate * 2, 100_000)))
            initial.handoff[c.name] = HandoffWindow(settings: .init(probeMessages: probe,
                                                                    receiptTimeoutMillis: Int64(config.receiptTimeoutSeconds * 1000)), now: now)
        }
        if !initial.handoff.isEmpty {
            // After a restart, what the gateways still hold of ours: `sent` without a pass-on receipt.
            do {
                let rows = try store.handedOverNotPassedOn(carriers: Array(initial.handoff.keys))
                for (carrier, list) in Dictionary(grouping: rows, by: \.carrier) {
                    initial.handoff[carrier]?.restore(list.map { (id: $0.id, at: $0.at) })
                }
            } catch {
                logger.error("outstanding hand-offs not read; the deadline windows start empty", ["error": "\(error)"])
            }
        }
        state = Mutex(initial)
    }

    /// A receipt for a carrier's message arrived (the receipt endpoint calls this after storing it). A pass-on
    /// receipt (smsc-accepted, buffered, any final one) takes the message out of the carrier's handoff window and
    /// teaches it the gateway's pace. `messageID` nil: a receipt keyed by the gateway's id only.
    public func receipt(carrier: String, messageID: Int64?, status: ReceiptStatus) {
        let now = clock.now()
        let (event, held) = state.withLock { s -> (HandoffWindow.Event?, Bool) in
            guard s.handoff[carrier] != nil else { return (nil, false) }
            let e = s.handoff[carrier]!.heardFrom(at: now)
            // Every receipt status says the gateway moved the message on; one that expired in its queue did not
            // take the link's time (named, not matched as a case: `expired` is a status of issue 17's receipts).
            s.handoff[carrier]!.passedOn(messageID, at: now, pace: status.name != "expired")
            return (e, s.handoffHeld.remove(carrier) != nil)
        }
        if held { worker.wake() }
        if event == .resumed { logger.notice("carrier sends receipts again: its hand-offs are held to the deadline again", ["carrier.name": carrier]) }
    }

    /// How many more messages `carrier` may be handed now (``HandoffWindow``) for the earliest deadline among
    /// `running`; Int.max when it does not limit.
    private func handoffRoom(_ carrier: String, running: [ActiveCampaign], now: UnixMillis) -> Int {
        guard let deadline = running.map(\.deadlineAt).min() else { return .max }
        let (room, event) = state.withLock { s -> (Int, HandoffWindow.Event?) in
            guard s.handoff[carrier] != nil else { return (.max, nil) }
            let e = s.handoff[carrier]!.advance(to: now)
            let r = s.handoff[carrier]!.room(deadline: deadline, now: now) ?? .max
            if r == 0 { s.handoffHeld.insert(carrier) } else { s.handoffHeld.remove(carrier) }
            return (r, e)
        }
        if case .silenced(let n)? = event {
            logger.warning("no receipt from the carrier for a minute while messages are outstanding: hand-offs are no longer held to the deadline",
                           ["carrier.name": carrier, "outstanding": "\(n)"])
        }
        return room
    }

    /// Starts the dispatch thread.
    public func start() {
        worker.start { [self] _ in self.loop() }
    }

    /// The operator resumes a carrier paused after identical permanent answers; false when it was not paused.
    public func resume(carrier: String) -> Bool {
        let was = state.withLock { s -> Bool in
            guard s.identical[carrier]?.isPaused == true else { return false }
            s.identical[carrier]!.resume()
            s.workHint = true
            return true
        }
        worker.wake()
        if was { logger.notice("carrier resumed by the operator", ["carrier.name": carrier]) }
        return was
    }

    /// New work may exist (a campaign was committed): look now rather than at the next tick.
    public func wake() {
        state.withLock { $0.workHint = true }
        worker.wake()
    }

    /// Stops claiming, waits up to `drainSeconds` for requests in flight, records everything, and returns.
    /// Requests still in flight at the deadline are recorded as `unknown` (they may have reached the gateway).
    public func stop(drainSeconds: Double) {
        state.withLock {
            $0.stopping = true
            $0.drainDeadline = clock.now() + Int64(drainSeconds * 1000)
        }
        worker.stop()
    }

    public func status() -> [CarrierStatus] {
        let now = clock.now()
        let nowSec = now / 1000
        return state.withLock { s in
            carriers.map { c in
                let recent = (s.started[c.name] ?? [:]).filter { $0.key > nowSec - 10 && $0.key <= nowSec }.values.reduce(0, +)
                let batch = maxBatch[c.name] ?? 1
                let p = s.pacers[c.name]!
                let breaker = s.breakers[c.name]?.state ?? .closed
                return CarrierStatus(name: c.name, configuredRate: c.rate, maxInFlight: c.maxInFlight,
                                     inFlight: p.inFlight, currentRate: Double(recent) / 10,
                                     allowedRate: p.allowedRate, breaker: breaker,
                                     maxBatch: batch, tokens: s.pacers[c.name]!.tokens(now: now),
                                     segmentsSent: s.segmentsSent[c.name] ?? 0, requests: s.requests[c.name] ?? 0,
                                     pausedUntil: p.pausedUntil(now: now),
                                     handoffOutstanding: s.handoff[c.name]?.outstandingCount ?? 0, passOnRate: s.handoff[c.name]?.pace,
                                     handoffLimiting: s.handoff[c.name].map { !$0.isSilent } ?? false, requestsPerSecond: c.requestsPerSecond,
                                     allowedRequestRate: p.allowedRequestRate, batchTarget: p.batchTarget, minBatch: p.batchMin,
                                     breakerCause: breaker == .closed ? nil : s.breakerCause[c.name],
                                     authRefused: s.authRefused[c.name], pausedReason: s.identical[c.name]?.pausedReason,
                                     answers: s.answers[c.name] ?? [:])
            }
        }
    }

    // MARK: - The loop

    private func loop() {
        var lastAdvance: UnixMillis = 0
        var lastSweep: UnixMillis = 0
        var active: [ActiveCampaign] = []
        var idleUntil: [String: UnixMillis] = [:]  // "campaign|carrier" with nothing claimable
        var fair: [String: FairShare] = [:]           // per carrier
        var campaignBuckets: [String: TokenBucket] = [:]  // per campaign with a max_rate
        var lastFailover: UnixMillis = 0
        var remainderSince: [String: UnixMillis] = [:]  // "campaign|carrier" below its carrier's batch.min since
        while true {
            let now = clock.now()
            // The answers taken and the count still in flight in one snapshot: an answer that lands in between is
            // in one or the other, never lost. (Counted apart, the last answers of a drain were dropped: their
            // messages stayed `sending` and the next start reported them `unknown` after a clean stop.)
            let (finished, stopping, drainDeadline, hint, remaining) = state.withLock { s in
                let f = s.finished
                s.finished.removeAll(keepingCapacity: true)
                let h = s.workHint
                s.workHint = false
                return (f, s.stopping, s.drainDeadline, h, s.inFlight.count)
            }
            if !finished.isEmpty { recordFinished(finished, active: active) }
            if stopping {
                if remaining == 0 { break }
                if now >= drainDeadline {
                    abandonInFlight()
                    // Answers that came after the snapshot are recorded as answered, not abandoned.
                    let late = state.withLock { s in
                        defer { s.finished.removeAll() }
                        return s.finished
                    }
                    if !late.isEmpty { recordFinished(late, active: active) }
                    break
                }
                waitUntil(min(drainDeadline, now + 50))
                continue
            }
            if hint || now - lastAdvance >= 500 || active.contains(where: { $0.startAt > lastAdvance && $0.startAt <= now }) {
                do {
                    while try store.advanceCampaigns(now: now) {}
                    // A campaign the store holds but cannot be sent from fails alone; the others go on.
                    let work = try store.activeWorkAndFailures()
                    for (id, reason) in work.failed {
                        logger.error("campaign failed", ["campaign.id": id, "reason": reason])
                    }
                    active = work.active
                } catch {
                    logger.error("store unavailable; dispatch paused", ["error": "\(error)"])
                }
                lastAdvance = now
                if hint { idleUntil.removeAll() }
                if now - lastSweep >= min(60_000, Int64(receiptTimeoutSeconds * 250)) {
                    // Receipts overdue: `sent` → `unknown` (a late receipt can still settle them).
                    lastSweep = now
                    do {
                        while try store.expireReceipts(olderThan: now - Int64(receiptTimeoutSeconds * 1000)) == 20_000 {}
                    } catch {
                        logger.error("receipt sweep failed", ["error": "\(error)"])
                    }
                }
            }
            var nextWake = now + 500
            // Outside its daily windows a campaign sends nothing; wake when the next window opens.
            for c in active where c.state == .running && !c.carriers.isEmpty && !c.windows.isOpen(at: now) {
                nextWake = min(nextWake, max(now + 1, c.windows.nextOpen(after: now)))
            }
            if now - lastFailover >= 250 {
                lastFailover = now
                failover(active: active, now: now)
            }
            for carrier in carriers {
                let perRound = min(10_000, max(claimBatch, (maxBatch[carrier.name] ?? 1) * 20))
                let running = active.filter { $0.state == .running && $0.deadlineAt > now && $0.carriers.contains(carrier.name)
                    && $0.windows.isOpen(at: now) && (idleUntil["\($0.id)|\(carrier.name)"] ?? 0) <= now }
                if running.isEmpty { continue }
                // What the gateway can still pass on before the earliest deadline (``HandoffWindow``): nothing more
                // while it holds all it can; a pass-on receipt wakes the loop.
                let room = handoffRoom(carrier.name, running: running, now: now)
                if room == 0 { continue }
                // The carrier's health: a carrier paused (identical permanent answers, Retry-After) or open
                // (breaker) gets nothing; its messages wait. The pacer holds the message rate, the request rate,
                // the requests in flight and the batch fill (``CarrierPacer``).
                let decision = state.withLock { s -> (CarrierPacer.Decision, UnixMillis?) in
                    if s.identical[carrier.name]!.isPaused { return (.wait(until: nil), nil) }
                    if hint { s.pacers[carrier.name]!.workArrived() }
                    let a = s.breakers[carrier.name]!.allowance(now: now)
                    if a == 0 { return (.wait(until: nil), s.breakers[carrier.name]!.reopensAt()) }
                    return (s.pacers[carrier.name]!.decide(now: now, maxRequests: a ?? .max), nil)
                }
                if let reopens = decision.1 { nextWake = min(nextWake, max(now + 1, reopens)) }
                guard case .claim(let granted, let grantedRequests) = decision.0 else {
                    // Let a few tokens gather so one claim transaction carries several messages.
                    if case .wait(let until?) = decision.0 { nextWake = min(nextWake, max(until, now + 2)) }
                    continue
                }
                // The global cap, in the carriers' units: what the carrier's pacer grants and it refuses goes back.
                let total = state.withLock { s -> Int in
                    guard s.global != nil else { return min(granted, perRound, room) }
                    return s.global!.take(upTo: min(granted, perRound, room), now: now)
                }
                var used = (messages: 0, requests: 0, extraParts: 0)
                if total > 0 {
                    used = dispatch(total, to: running, carrier: carrier.name, now: now, fair: &fair[carrier.name, default: FairShare()],
                                    campaignBuckets: &campaignBuckets, idleUntil: &idleUntil, remainderSince: &remainderSince)
                } else if let g = state.withLock({ $0.global?.whenAvailable(1, now: now) }) {
                    nextWake = min(nextWake, max(g, now + 2))
                }
                state.withLock { s in
                    // A carrier that counts SMS parts is charged the extra parts of long messages (its bucket may go
                    // into debt), and so is the global cap.
                    let parts = carrier.rateInSegments ? used.extraParts : 0
                    s.pacers[carrier.name]!.settle(granted: (granted, grantedRequests), used: (used.messages, used.requests),
                                                   extraParts: parts, now: now)
                    s.global?.giveBack(total - used.messages)
                    if parts > 0 { s.global?.charge(parts, now: now) }
                }
                nextWake = min(nextWake, now + 2)
            }
            waitUntil(nextWake)
        }
    }

    /// Shares `total` granted sends of one carrier among its running campaigns (``FairShare``: weight and
    /// priority, each campaign's own `max_rate`), claims them from the store and starts them. What a campaign
    /// leaves unused goes to the others in a second pass. Returns how many messages were started, in how many
    /// requests, and their SMS parts beyond the first.
    ///
    /// A carrier with a minimum batch (`batch.min`) is not split among campaigns (each share could fall below the
    /// minimum): the campaigns take the grant in turn. A campaign with fewer claimable messages than the minimum
    /// waits while more may come (retries, requests in flight), at most ``remainderWaitMillis``; then its
    /// remainder moves to `batch.remainder_carrier` when set, else it fails naming the minimum (nothing is sent).
    private func dispatch(_ total: Int, to running: [ActiveCampaign], carrier: String, now: UnixMillis, fair: inout FairShare,
                          campaignBuckets: inout [String: TokenBucket], idleUntil: inout [String: UnixMillis],
                          remainderSince: inout [String: UnixMillis]) -> (messages: Int, requests: Int, extraParts: Int) {
        let minBatch = carrierConfig[carrier]?.batchMin ?? 1
        let shares = minBatch > 1 ? [:]
            : fair.split(total, among: running.map { FairShare.Claimant(id: $0.id, weight: $0.weight, urgent: $0.priority == .urgent) })
        var used = 0
        var requests = 0
        var extraParts = 0
        var hungry: [ActiveCampaign] = []
        func claim(_ campaign: ActiveCampaign, _ wanted: Int) -> Int {
            var n = wanted
            let key = "\(campaign.id)|\(carrier)"
            if minBatch > 1 {
                guard n >= minBatch else { return 0 }
                switch remainder(campaign, carrier: carrier, minBatch: minBatch, now: now, since: &remainderSince[key]) {
                case .send: break
                case .wait:
                    idleUntil[key] = now + 1000
                    return 0
                case .done:
                    return 0
                }
            }
            if let cap = campaign.maxRate {
                var bucket = campaignBuckets[campaign.id] ?? TokenBucket(rate: cap, burst: TokenBucket.burst(rate: cap, seconds: 0.1), now: now)
                n = bucket.take(upTo: n, now: now)
                campaignBuckets[campaign.id] = bucket
            }
            guard n > 0 else { return 0 }
            let claimed: [OutgoingMessage]
            do {
                claimed = try store.claim(campaign: campaign.id, carrier: carrier, limit: n, now: now, policy: contactPolicy,
                                          deadline: campaign.deadlineAt, until: campaign.windows.closes(after: now) ?? .max)
            } catch {
                logger.error("claim failed", ["campaign.id": campaign.id, "carrier.name": carrier, "error": "\(error)"])
                claimed = []
            }
            let extra = claimed.reduce(0) { $0 + max(0, $1.segments - 1) }
            if campaign.maxRate != nil {
                campaignBuckets[campaign.id]?.giveBack(n - claimed.count)
                // max_rate counts SMS parts: long messages pay for their extra parts.
                if extra > 0 { campaignBuckets[campaign.id]?.charge(extra, now: now) }
            }
            extraParts += extra
            if claimed.count < n { idleUntil[key] = now + 250 }
            requests += launch(claimed, sender: campaign.sender, deadline: campaign.deadlineAt, carrier: carrier, now: now)
            return claimed.count
        }
        if minBatch > 1 {
            for campaign in running where used < total { used += claim(campaign, total - used) }
            return (used, requests, extraParts)
        }
        for campaign in running {
            let share = shares[campaign.id] ?? 0
            let got = claim(campaign, share)
            used += got
            if got < share { fair.refund(share - got, to: campaign.id) } else if share > 0 { hungry.append(campaign) }
        }
        // Work-conserving: what one campaign could not use goes to those that used all of theirs.
        for campaign in hungry where used < total {
            used += claim(campaign, total - used)
        }
        return (used, requests, extraParts)
    }

    /// How long a campaign's messages below its carrier's `batch.min` wait for more before they are a remainder.
    private let remainderWaitMillis: Int64 = 30_000

    private enum RemainderStep { case send, wait, done }

    /// For a carrier with a minimum batch: whether a campaign has a full minimum batch to claim (`.send`), should
    /// wait for more (`.wait`), or had its remainder moved or failed now (`.done`).
    private func remainder(_ campaign: ActiveCampaign, carrier: String, minBatch: Int, now: UnixMillis,
                           since: inout UnixMillis?) -> RemainderStep {
        let readiness: (ready: Int, moreMayCome: Bool)
        do {
            readiness = try store.batchReadiness(campaign: campaign.id, carrier: carrier, now: now, limit: minBatch)
        } catch {
            logger.error("claim failed", ["campaign.id": campaign.id, "carrier.name": carrier, "error": "\(error)"])
            return .wait
        }
        if readiness.ready >= minBatch {
            since = nil
            return .send
        }
        if readiness.ready == 0 { return .wait }
        let first = since ?? now
        since = first
        // Wait while more may come, bounded; never past what the deadline leaves.
        if readiness.moreMayCome && now - first < remainderWaitMillis && campaign.deadlineAt - now > remainderWaitMillis { return .wait }
        since = nil
        let why = "\(readiness.ready) left, fewer than carrier \(carrier)'s batch.min \(minBatch)"
        let allowed = campaign.allowedCarriers.isEmpty || campaign.allowedCarriers.contains { $0 == carrierConfig[carrier]?.remainderCarrier }
        if let target = carrierConfig[carrier]?.remainderCarrier, allowed {
            do {
                let moved = try store.reroute(campaign: campaign.id, from: carrier, to: target, limit: minBatch, reason: why)
                logger.notice("batch remainder moved", ["campaign.id": campaign.id, "carrier.name": carrier, "to": target, "count": "\(moved)"])
            } catch {
                logger.error("batch remainder move failed", ["campaign.id": campaign.id, "carrier.name": carrier, "error": "\(error)"])
            }
            return .done
        }
        // No carrier to take it: claimed and failed with the reason, never sent (the API would refuse it).
        let claimed = (try? store.claim(campaign: campaign.id, carrier: carrier, limit: minBatch - 1, now: now,
                                        deadline: campaign.deadlineAt)) ?? []
        let reason = "\(why), and no batch.remainder_carrier\(carrierConfig[carrier]?.remainderCarrier != nil ? " the campaign allows" : ""); not sent"
        logger.warning("batch remainder failed", ["campaign.id": campaign.id, "carrier.name": carrier, "count": "\(claimed.count)", "reason": reason])
        do {
            try store.record(claimed.map { SendOutcome($0, result: .failed(detail: reason)) })
        } catch {
            logger.error("recording outcomes failed", ["count": "\(claimed.count)", "error": "\(error)"])
        }
        return .done
    }

    /// Sleeps until `deadline` or a wake-up (one that came since the last wait returns at once).
    private func waitUntil(_ deadline: UnixMillis) {
        worker.wait(until: .after(seconds: Double(max(0, deadline - clock.now())) / 1000))
    }

    /// Starts `messages` in requests of at most the adapter's batch, split evenly (110 with a batch of 100 go as
    /// 55 + 55, so no request falls below a `batch.min` of up to half the batch); returns how many requests.
    @discardableResult
    private func launch(_ messages: [OutgoingMessage], sender: String, deadline: UnixMillis, carrier: String, now: UnixMillis) -> Int {
        guard !messages.isEmpty, let adapter = adapters[carrier], let base = receiptBase[carrier] else { return 0 }
        let batch = max(1, adapter.maxBatch)
        let perMessageURL = receiptPerMessage.contains(carrier)
        let requestCount = batch == 1 ? messages.count : (messages.count + batch - 1) / batch
        state.withLock { s in
            for m in messages { s.inFlight[m.id] = m }
            s.handoff[carrier]?.handedOver(messages.lazy.map(\.id), at: now)
            s.breakers[carrier]?.started()
            let sec = now / 1000
            s.started[carrier, default: [:]][sec, default: 0] += messages.count
            if s.started[carrier]!.count > 12 { s.started[carrier] = s.started[carrier]!.filter { $0.key > sec - 11 } }
            s.requests[carrier, default: 0] += Int64(requestCount)
        }
        func sms(_ m: OutgoingMessage) -> OutgoingSMS {
            OutgoingSMS(id: m.id, from: sender, to: m.phone, text: m.text, encoding: m.encoding, segments: m.segments,
                        receiptURL: perMessageURL ? base + String(m.id) : base, validUntil: deadline)
        }
        if batch == 1, let exchange = adapter as? any OneExchangeAdapter {
            // No task per message: the request is built here and its answer classified on the engine thread,
            // which hands the outcome straight to `finish`.
            for m in messages {
                exchange.start(sms(m)) { [self] outcome in self.finish([m], [outcome]) }
            }
            return requestCount
        }
        // Any other adapter: a task per request, of one message or of a batch. One-text-per-request gateways get
        // batches of equal texts (a stable sort keeps id order within a text).
        let ordered = adapter.batchesShareText
            ? messages.enumerated().sorted { ($0.element.text, $0.element.encoding == .ucs2 ? 1 : 0, $0.offset) < ($1.element.text, $1.element.encoding == .ucs2 ? 1 : 0, $1.offset) }.map(\.element)
            : messages
        var start = 0
        for i in 0..<requestCount {
            // Even sizes: the first `count % requests` chunks carry one more.
            let size = ordered.count / requestCount + (i < ordered.count % requestCount ? 1 : 0)
            let chunk = Array(ordered[start..<start + size])
            start += size
            let outgoing = chunk.map(sms)
            Task.detached { [self] in
                let outcomes = await adapter.send(batch: outgoing)
                self.finish(chunk, outcomes)
            }
        }
        return requestCount
    }

    /// One request finished: `outcomes[i]` is `messages[i]`'s. The breaker and the pacer see one event per
    /// request (a batch's whole-request failure is one failure, not a hundred); identical permanent answers
    /// are counted per message.
    private func finish(_ messages: [OutgoingMessage], _ outcomes: [GatewayOutcome]) {
        let events = state.withLock { s -> Events in finishLocked(&s, messages, outcomes) }
        worker.wake()
        guard let carrier = messages.first?.carrier else { return }
        if let (before, after) = events.breaker, before != after {
            // Operators see the breaker move, with its cause, in the diagnostics as well as in /metrics and `loa carriers`.
            if after == .open {
                if let refusal = events.authRefused {
                    logger.error("carrier breaker opened: the gateway refuses Loa's credentials; its messages wait",
                                 ["carrier.name": carrier, "breaker.from": before.rawValue, "cause": refusal])
                } else {
                    logger.warning("carrier breaker opened: its messages wait",
                                   ["carrier.name": carrier, "breaker.from": before.rawValue, "cause": events.cause ?? "unknown"])
                }
            } else {
                logger.notice("carrier breaker \(after.rawValue)", ["carrier.name": carrier, "breaker.from": before.rawValue])
            }
        }
        if let paused = events.paused {
            logger.warning("carrier paused: identical permanent answers in a row; its messages wait until `loa carriers resume`",
                           ["carrier.name": carrier, "reason": paused])
        }
    }

    /// What a finished request changed, for the log lines written outside the lock.
    private struct Events {
        var breaker: (CircuitBreaker.State, CircuitBreaker.State)?
        var cause: String?
        var authRefused: String?
        /// The carrier paused after identical permanent answers with this request (the reason).
        var paused: String?
    }

    /// Records one finished request under the state lock.
    private func finishLocked(_ s: inout State, _ messages: [OutgoingMessage], _ outcomes: [GatewayOutcome]) -> Events {
        let now = clock.now()
        var events = Events()
        guard let carrier = messages.first?.carrier else { return events }
        let before = s.breakers[carrier]?.state
        var health: GatewayOutcome?
        var any = false
        for (i, m) in messages.enumerated() {
            // An adapter that broke the contract (too few outcomes) leaves the rest as temporary failures.
            let outcome = i < outcomes.count ? outcomes[i] : .temporary("adapter returned no outcome for this message")
            guard s.inFlight.removeValue(forKey: m.id) != nil else { continue }  // abandoned at the drain deadline
            any = true
            if case .accepted = outcome {} else { s.handoff[m.carrier]?.withdrawn(m.id) }
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
                s.identical[carrier]?.accepted()
            case .permanent(let d):
                if let reason = s.identical[carrier]?.pausedReason {
                    held = reason
                } else if s.identical[carrier]?.permanent(d) == true {
                    events.paused = s.identical[carrier]?.pausedReason
                }
            default: break
            }
            s.finished.append(Finished(message: m, outcome: outcome, at: now, held: held))
        }
        guard any else { return events }
        s.pacers[carrier]?.finished()
        guard let health else { return events }
        switch health {
        case .accepted, .permanent:
            s.breakers[carrier]?.succeeded()   // the gateway answered
            s.authRefused[carrier] = nil
        case .temporary(let d), .unavailable(let d), .ambiguous(let d):
            s.lastFailure[carrier] = d
            s.breakers[carrier]?.failed(now: now)
        case .unauthorized(let d):
            // No retry soon can change a refusal of the credentials: the breaker opens at once, and probes after
            // its cooldown (a fixed password is found without a restart of the campaign).
            s.lastFailure[carrier] = d
            s.authRefused[carrier] = d
            s.breakers[carrier]?.trip(now: now)
        case .throttled(let retryAfter, _):
            // Throttling means the gateway is up: the breaker closes, the pacer slows the limit it signals.
            s.breakers[carrier]?.succeeded()
            s.handoff[carrier]?.throttled(at: now)
            s.authRefused[carrier] = nil
            s.pacers[carrier]?.throttled(retryAfterSeconds: retryAfter, now: now)
        }
        let after = s.breakers[carrier]?.state
        if after == .open, before != .open { s.breakerCause[carrier] = s.lastFailure[carrier] }
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
    private func failover(active: [ActiveCampaign], now: UnixMillis) {
        let candidates = active.filter { $0.failover && $0.state == .running && $0.deadlineAt > now }
        guard !candidates.isEmpty else { return }
        let health = state.withLock { s in Dictionary(uniqueKeysWithValues: carriers.map { ($0.name, s.breakers[$0.name]!.state) }) }
        for c in candidates {
            let allowed = c.allowedCarriers.isEmpty ? carriers.map(\.name) : c.allowedCarriers
            let up = allowed.filter { health[$0] == .closed && adapters[$0] != nil }
            guard let target = up.first else { continue }
            // Only while the breaker is open: half-open lets the carrier's own probes through.
            for down in c.carriers where health[down] == .open {
                guard down != target else { continue }
                do {
                    let moved = try store.reroute(campaign: c.id, from: down, to: target, limit: 2_000,
                                                  reason: "carrier \(down) is down (breaker \(health[down]!.rawValue))")
                    if moved > 0 {
                        logger.notice("failover: queued messages moved", ["campaign.id": c.id, "carrier.name": down, "to": target, "count": "\(moved)"])
                    }
                } catch {
                    logger.error("failover failed", ["campaign.id": c.id, "error": "\(error)"])
                }
            }
        }
    }

    private func recordFinished(_ finished: [Finished], active: [ActiveCampaign]) {
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
        // Not waited for: the outcomes join the next claim's transaction. If it fails they stay `sending`; the
        // next start reports them `unknown`, never resends them.
        let logger = logger
        store.recordSoon(outcomes) { error in
            logger.error("recording outcomes failed", ["count": "\(outcomes.count)", "error": "\(error)"])
        }
    }

    private func abandonInFlight() {
        let left = state.withLock { s -> [OutgoingMessage] in
            let l = Array(s.inFlight.values)
            s.inFlight.removeAll()
            return l
        }
        logger.warning("drain deadline passed; requests still in flight are recorded unknown", ["count": "\(left.count)"])
        try? store.record(left.map { SendOutcome($0, result: .unknown(detail: "daemon stopped before the gateway answered; not resent")) })
    }
}
