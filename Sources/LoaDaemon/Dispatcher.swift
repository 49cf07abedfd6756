import Foundation
import LoaCarriers
import LoaCore
import LoaStore
import Synchronization

/// Moves queued messages to the gateways: claims what each carrier's limiter allows, sends through the
/// adapters, and records the outcomes in batches.
///
/// It runs on its own thread (store calls block) and sleeps on a condition variable until the next token,
/// a finished request, new work or shutdown. The policy pieces it uses (``CarrierLimiter``, ``RetryPolicy``,
/// ``MessageLifecycle``) are pure and tested on a manual clock; this class only wires them to effects.
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
    }

    private struct Finished {
        var message: OutgoingMessage
        var outcome: GatewayOutcome
        var at: UnixMillis
    }

    private struct State {
        var limiters: [String: CarrierLimiter]
        var adaptive: [String: AdaptiveRate] = [:]
        var breakers: [String: CircuitBreaker] = [:]
        var finished: [Finished] = []
        var inFlight: [Int64: OutgoingMessage] = [:]
        var stopping = false
        var drainDeadline: UnixMillis = 0
        var workHint = true
        /// Started sends per carrier per second (epoch second → count), last 10 s.
        var started: [String: [Int64: Int]] = [:]
        var stopped = false
        /// The global cap over all carriers, in the carriers' units (nil: none).
        var global: TokenBucket?
        var segmentsSent: [String: Int64] = [:]
        var requests: [String: Int64] = [:]
        /// Per carrier with `pace_from_receipts`: what it holds of ours and its learned pass-on pace.
        var handoff: [String: HandoffWindow] = [:]
        /// Carriers whose last round was held by their handoff window: a pass-on receipt wakes the loop.
        var handoffHeld: Set<String> = []
    }

    private let store: Store
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
    private let cond = NSCondition()
    /// The most messages claimed per carrier per round (one transaction).
    private let claimBatch = 500
    private let maxBatch: [String: Int]

    public init(store: Store, adapters: [String: any CarrierAdapter], config: LoaConfig, clock: any TimeSource, logger: Logger) {
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
            let base = "\(config.publicURL)/dlr/\(URLQuery.escape(c.name))?k=\(URLQuery.escape(c.receiptSecret))"
            switch c.kind {
            case "jasmin":
                // Jasmin posts id, level and message_status itself (dlr-method=POST keeps this query intact).
                bases[c.name] = base + "&m="
                perMessage.insert(c.name)
            case "generic":
                // One callback URL for every message: the receipt names its message by `{{id}}` or the gateway's id.
                bases[c.name] = base
            default:
                // Kannel fills %d (report type bits), %T (time), %F (the SMSC's message id; `fc` is an old name) and %A
                // (the report text: `ACK/`, `NACK/…`, or the SMPP receipt `id:… stat:… err:…`): KannelAdapter.parseReceipt.
                bases[c.name] = base + "&st=%d&ts=%T&fc=%F&ans=%A&id="
                perMessage.insert(c.name)
            }
        }
        receiptPerMessage = perMessage
        receiptBase = bases
        let batches = Dictionary(uniqueKeysWithValues: config.carriers.map { c in (c.name, max(1, adapters[c.name]?.maxBatch ?? 1)) })
        maxBatch = batches
        let now = clock.now()
        var initial = State(
            // A batching carrier's max_in_flight counts requests: the limiter counts messages.
            limiters: Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, CarrierLimiter(rate: $0.rate, maxInFlight: $0.maxInFlight * batches[$0.name]!, now: now)) }),
            adaptive: Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, AdaptiveRate(configured: $0.rate, now: now)) }),
            breakers: Dictionary(uniqueKeysWithValues: config.carriers.map { ($0.name, CircuitBreaker()) }))
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
        cond.lock()
        let (event, held) = state.withLock { s -> (HandoffWindow.Event?, Bool) in
            guard s.handoff[carrier] != nil else { return (nil, false) }
            let e = s.handoff[carrier]!.heardFrom(at: now)
            // Every receipt status says the gateway moved the message on; one that expired in its queue did not
            // take the link's time (named, not matched as a case: `expired` is a status of issue 17's receipts).
            s.handoff[carrier]!.passedOn(messageID, at: now, pace: status.name != "expired")
            return (e, s.handoffHeld.remove(carrier) != nil)
        }
        if held { cond.signal() }
        cond.unlock()
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
        let t = Thread { [self] in
            nameThisThread("loa-dispatch")
            self.loop()
        }
        t.start()
    }

    /// New work may exist (a campaign was committed): look now rather than at the next tick.
    public func wake() {
        cond.lock()
        state.withLock { $0.workHint = true }
        cond.signal()
        cond.unlock()
    }

    /// Stops claiming, waits up to `drainSeconds` for requests in flight, records everything, and returns.
    /// Requests still in flight at the deadline are recorded as `unknown` (they may have reached the gateway).
    public func stop(drainSeconds: Double) {
        cond.lock()
        state.withLock {
            $0.stopping = true
            $0.drainDeadline = clock.now() + Int64(drainSeconds * 1000)
        }
        cond.signal()
        while !state.withLock({ $0.stopped }) { cond.wait() }
        cond.unlock()
    }

    public func status() -> [CarrierStatus] {
        let now = clock.now()
        let nowSec = now / 1000
        return state.withLock { s in
            carriers.map { c in
                let recent = (s.started[c.name] ?? [:]).filter { $0.key > nowSec - 10 && $0.key <= nowSec }.values.reduce(0, +)
                let batch = maxBatch[c.name] ?? 1
                return CarrierStatus(name: c.name, configuredRate: c.rate, maxInFlight: c.maxInFlight,
                                     inFlight: ((s.limiters[c.name]?.inFlight ?? 0) + batch - 1) / batch, currentRate: Double(recent) / 10,
                                     allowedRate: s.adaptive[c.name]?.current ?? c.rate, breaker: s.breakers[c.name]?.state ?? .closed,
                                     maxBatch: batch, tokens: s.limiters[c.name]?.bucket.available(now) ?? 0,
                                     segmentsSent: s.segmentsSent[c.name] ?? 0, requests: s.requests[c.name] ?? 0,
                                     pausedUntil: (s.adaptive[c.name]?.pausedUntil ?? 0) > now ? s.adaptive[c.name]!.pausedUntil : 0,
                                     handoffOutstanding: s.handoff[c.name]?.outstandingCount ?? 0, passOnRate: s.handoff[c.name]?.pace,
                                     handoffLimiting: s.handoff[c.name].map { !$0.isSilent } ?? false)
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
        var lastBatch: [String: UnixMillis] = [:]  // per batching carrier: the last claim
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
                // What the gateway can still pass on before the earliest deadline (HandoffWindow).
                let room = handoffRoom(carrier.name, running: running, now: now)
                // The carrier's health: a paused (Retry-After) or open (breaker) carrier gets nothing; its
                // messages wait. Throttling lowers the bucket's rate; quiet seconds raise it back.
                let (allowance, wakeAt) = state.withLock { s -> (Int, UnixMillis?) in
                    let rate = s.adaptive[carrier.name]!.rate(now: now)
                    if rate <= 0 { return (0, s.adaptive[carrier.name]!.pausedUntil) }
                    if abs(s.limiters[carrier.name]!.bucket.rate - rate) > 1e-9 { s.limiters[carrier.name]!.bucket.setRate(rate, now: now) }
                    let a = s.breakers[carrier.name]!.allowance(now: now)
                    return (min(a ?? perRound, room), a == 0 ? s.breakers[carrier.name]!.reopensAt() : nil)
                }
                if let wakeAt, !running.isEmpty { nextWake = min(nextWake, max(now + 1, wakeAt)) }
                // A batching carrier lets tokens gather into full requests, lingering at most 100 ms.
                let batch = maxBatch[carrier.name] ?? 1
                var lingering = false
                if batch > 1 && !running.isEmpty && allowance > 0 && now - (lastBatch[carrier.name] ?? 0) < 100 {
                    // Wait for a full request's tokens (or the bucket's burst, if smaller) unless they are there.
                    let fullAt = state.withLock { s -> UnixMillis? in
                        let target = min(batch, s.limiters[carrier.name]!.bucket.burst)
                        return s.limiters[carrier.name]!.bucket.available(now) < target ? s.limiters[carrier.name]!.bucket.whenAvailable(target, now: now) : nil
                    }
                    if let fullAt {
                        lingering = true
                        nextWake = min(nextWake, max(now + 1, min(fullAt, (lastBatch[carrier.name] ?? 0) + 100)))
                    }
                }
                if !running.isEmpty && allowance > 0 && !lingering {
                    lastBatch[carrier.name] = now
                    let total = state.withLock { s -> Int in
                        // The global cap first, then the carrier's own bucket; what one grants and the other
                        // refuses goes back.
                        var cap = allowance
                        if s.global != nil { cap = s.global!.take(upTo: cap, now: now) }
                        let n = cap > 0 ? s.limiters[carrier.name]!.grant(max: cap, now: now) : 0
                        if s.global != nil { s.global!.giveBack(cap - n) }
                        return n
                    }
                    if total == 0, let g = state.withLock({ $0.global?.whenAvailable(1, now: now) }) {
                        nextWake = min(nextWake, max(g, now + 2))
                    }
                    if total > 0 {
                        let used = dispatch(total, to: running, carrier: carrier.name, now: now, fair: &fair[carrier.name, default: FairShare()],
                                            campaignBuckets: &campaignBuckets, idleUntil: &idleUntil)
                        state.withLock { s in
                            s.limiters[carrier.name]!.unused(total - used)
                            s.global?.giveBack(total - used)
                        }
                    }
                }
                if let next = state.withLock({ $0.limiters[carrier.name]!.nextGrant(now: now) }), !running.isEmpty {
                    // Let a few tokens gather so one claim transaction carries several messages.
                    nextWake = min(nextWake, max(next, now + 2))
                }
            }
            waitUntil(nextWake)
        }
        cond.lock()
        state.withLock { $0.stopped = true }
        cond.broadcast()
        cond.unlock()
    }

    /// Shares `total` granted sends of one carrier among its running campaigns (``FairShare``: weight and
    /// priority, each campaign's own `max_rate`), claims them from the store and starts them. What a campaign
    /// leaves unused goes to the others in a second pass. Returns how many were started.
    private func dispatch(_ total: Int, to running: [ActiveCampaign], carrier: String, now: UnixMillis, fair: inout FairShare,
                          campaignBuckets: inout [String: TokenBucket], idleUntil: inout [String: UnixMillis]) -> Int {
        let shares = fair.split(total, among: running.map { FairShare.Claimant(id: $0.id, weight: $0.weight, urgent: $0.priority == .urgent) })
        var used = 0
        var hungry: [ActiveCampaign] = []
        func claim(_ campaign: ActiveCampaign, _ wanted: Int) -> Int {
            var n = wanted
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
            // A carrier that counts SMS parts is charged the extra parts of long messages (its bucket may go into debt),
            // and so is the global cap.
            if extra > 0 && carriers.first(where: { $0.name == carrier })?.rateInSegments == true {
                state.withLock { s in
                    s.limiters[carrier]!.bucket.charge(extra, now: now)
                    s.global?.charge(extra, now: now)
                }
            }
            if claimed.count < n { idleUntil["\(campaign.id)|\(carrier)"] = now + 250 }
            launch(claimed, sender: campaign.sender, deadline: campaign.deadlineAt, carrier: carrier, now: now)
            return claimed.count
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
        return used
    }

    private func waitUntil(_ deadline: UnixMillis) {
        cond.lock()
        let pending = state.withLock { !$0.finished.isEmpty || $0.workHint || ($0.stopping && $0.inFlight.isEmpty) }
        if !pending {
            let delta = max(0, deadline - clock.now())
            _ = cond.wait(until: Date(timeIntervalSinceNow: Double(delta) / 1000))
        }
        cond.unlock()
    }

    private func launch(_ messages: [OutgoingMessage], sender: String, deadline: UnixMillis, carrier: String, now: UnixMillis) {
        guard !messages.isEmpty, let adapter = adapters[carrier], let base = receiptBase[carrier] else { return }
        let batch = max(1, adapter.maxBatch)
        let perMessageURL = receiptPerMessage.contains(carrier)
        state.withLock { s in
            for m in messages { s.inFlight[m.id] = m }
            s.handoff[carrier]?.handedOver(messages.lazy.map(\.id), at: now)
            s.breakers[carrier]?.started()
            let sec = now / 1000
            s.started[carrier, default: [:]][sec, default: 0] += messages.count
            if s.started[carrier]!.count > 12 { s.started[carrier] = s.started[carrier]!.filter { $0.key > sec - 11 } }
            s.segmentsSent[carrier, default: 0] += Int64(messages.reduce(0) { $0 + $1.segments })
            s.requests[carrier, default: 0] += Int64((messages.count + batch - 1) / batch)
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
            return
        }
        // Any other adapter: a task per request, of one message or of a batch. One-text-per-request gateways get
        // batches of equal texts (a stable sort keeps id order within a text).
        let ordered = adapter.batchesShareText
            ? messages.enumerated().sorted { ($0.element.text, $0.element.encoding == .ucs2 ? 1 : 0, $0.offset) < ($1.element.text, $1.element.encoding == .ucs2 ? 1 : 0, $1.offset) }.map(\.element)
            : messages
        var start = 0
        while start < ordered.count {
            let chunk = Array(ordered[start..<min(ordered.count, start + batch)])
            start += batch
            let outgoing = chunk.map(sms)
            Task.detached { [self] in
                let outcomes = await adapter.send(batch: outgoing)
                self.finish(chunk, outcomes)
            }
        }
    }

    /// One request finished: `outcomes[i]` is `messages[i]`'s. The breaker and the adaptive rate see one event
    /// per request (a batch's whole-request failure is one failure, not a hundred).
    private func finish(_ messages: [OutgoingMessage], _ outcomes: [GatewayOutcome]) {
        cond.lock()
        let transition = state.withLock { s -> (CircuitBreaker.State, CircuitBreaker.State)? in
            let before = messages.first.flatMap { s.breakers[$0.carrier]?.state }
            return finishLocked(&s, messages, outcomes).flatMap { after in before.map { ($0, after) } }
        }
        cond.signal()
        cond.unlock()
        if let (before, after) = transition, before != after, let carrier = messages.first?.carrier {
            // Operators see the breaker move in the diagnostics as well as in /metrics and `loa carriers`.
            if after == .open {
                logger.warning("carrier breaker opened: its messages wait", ["carrier.name": carrier, "breaker.from": before.rawValue])
            } else {
                logger.notice("carrier breaker \(after.rawValue)", ["carrier.name": carrier, "breaker.from": before.rawValue])
            }
        }
    }

    /// Records one finished request under the state lock; returns the carrier's breaker state afterwards.
    private func finishLocked(_ s: inout State, _ messages: [OutgoingMessage], _ outcomes: [GatewayOutcome]) -> CircuitBreaker.State? {
        let now = clock.now()
        var health: GatewayOutcome?
        for (i, m) in messages.enumerated() {
            // An adapter that broke the contract (too few outcomes) leaves the rest as temporary failures.
            let outcome = i < outcomes.count ? outcomes[i] : .temporary("adapter returned no outcome for this message")
            guard s.inFlight.removeValue(forKey: m.id) != nil else { continue }  // abandoned at the drain deadline
            if case .accepted = outcome {} else { s.handoff[m.carrier]?.withdrawn(m.id) }
            s.limiters[m.carrier]?.finished()
            switch (health, outcome) {
            case (nil, _), (.accepted?, _), (.permanent?, _): health = outcome
            default: break
            }
            s.finished.append(Finished(message: m, outcome: outcome, at: now))
        }
        guard let carrier = messages.first?.carrier, let health else { return nil }
        switch health {
        case .accepted, .permanent: s.breakers[carrier]?.succeeded()   // the gateway answered
        case .temporary, .unavailable, .ambiguous: s.breakers[carrier]?.failed(now: now)
        case .throttled(let retryAfter, _):
            // Throttling means the gateway is up: the breaker closes, the adaptive rate slows down.
            s.breakers[carrier]?.succeeded()
            s.adaptive[carrier]?.throttled(retryAfterSeconds: retryAfter, now: now)
            s.handoff[carrier]?.throttled(at: now)
        }
        return s.breakers[carrier]?.state
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
                // "Not now" is not a failed attempt: wait (Retry-After, else a second) and try again, until the deadline.
                let at = f.at + max(Int64(((ra ?? 1) * 1000).clampedInt(0...86_400_000)), 500)  // a gateway's Retry-After, bounded to a day
                let deadline = deadlines[m.campaign] ?? f.at
                result = at >= deadline ? .expired(detail: "deadline reached while throttled: \(d)") : .retry(notBefore: at, detail: d)
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
