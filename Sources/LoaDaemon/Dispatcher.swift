import Foundation
import LoaCarriers
import LoaCore
import LoaStore
import Synchronization

/// Moves queued messages to the gateways: claims what each carrier's limiter allows, sends through the
/// adapters, and records the outcomes in batches.
///
/// It runs on a ``Worker`` of its own (store calls block) and sleeps in its wait until the plan's wake time,
/// a finished request, new work or shutdown. What to claim, from which campaign, for which carrier, in what
/// batches and when to look again is decided by ``DispatchPlan`` (pure, tested on a manual clock); the policy
/// pieces that see the answers (``CircuitBreaker``, ``IdenticalFailures``, ``RetryPolicy``, ``MessageLifecycle``)
/// are pure too. This class only wires them to effects.
public final class Dispatcher: Sendable {
    struct Finished {
        var message: OutgoingMessage
        var outcome: GatewayOutcome
        var at: UnixMillis
        /// The carrier is paused after identical permanent answers: this one waits instead of failing.
        var held: String?
    }

    struct State {
        /// Per carrier: its pacer, breaker, identical-failure count and hand-off window (``CarrierState``).
        var carriers: [String: CarrierState]
        /// The answer that last counted against each carrier's breaker.
        var lastFailure: [String: String] = [:]
        var breakerCause: [String: String] = [:]
        var authRefused: [String: String] = [:]
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
        /// The cluster lease was lost and not yet taken again (``ClusterEvent``): nothing is claimed meanwhile.
        var leaseLost = false
        /// Receipts that took a message of this node's out of a carrier's hand-off window, and how many of them
        /// another node applied (``ClusterReceiptFeed``).
        var passedOn: [String: Int64] = [:]
        var passedOnElsewhere: [String: Int64] = [:]
    }

    let store: any MessageStore
    let adapters: [String: any CarrierAdapter]
    let carriers: [LoaConfig.Carrier]
    let receiptBase: [String: String]
    /// Carriers whose receipt URL carries each message's id (all but generic gateways).
    let receiptPerMessage: Set<String>
    let retry: RetryPolicy
    let contactPolicy: ContactPolicy?
    let receiptTimeoutSeconds: Double
    let clock: any TimeSource
    let logger: Logger
    let state: Mutex<State>
    /// Request durations, retries and requeues per carrier, for `/metrics` (``DispatchMetrics.swift``).
    let sendStats = Mutex(SendStats())
    /// The dispatch thread; every change the loop must look at (an answer, new work, a receipt that frees a held
    /// carrier, the stop) wakes it.
    let worker = Worker(name: "loa-dispatch")
    let maxBatch: [String: Int]
    /// Answers of single-message requests as the engine thread classifies them, handed on to ``State/finished``
    /// once per engine round (``roundEnded()``): one lock of the state and one wake-up of this thread for all of
    /// a round's answers, not one per answer. Its own lock: the engine thread never waits for this thread here.
    let roundAnswers = Mutex(RoundAnswers())
    /// The plan's fixed part (the carriers' batch settings); the dispatcher thread keeps its own copy as it decides.
    let initialPlan: DispatchPlan
    let carrierConfig: [String: LoaConfig.Carrier]
    /// This node's share of the carriers in a cluster and what it published (``ClusterShares.swift``).
    let shares = Mutex(ShareState())
    /// This node's cluster lease (nil on SQLite: always allowed). Checked before each round's claims and before
    /// every request leaves (fencing: the engine's gate, or before a task-based adapter's send).
    let lease: (any ClusterLease)?
    /// Outcomes whose recording failed (the store down), recorded again until the store takes them
    /// (``DispatcherOutcomes.swift``, `retryUnrecorded`).
    let unrecorded = Mutex(Unrecorded())
    /// The store's failures, logged once per outage (``StoreOutage``).
    let outage = Mutex(StoreOutage())
    /// Per carrier of one message per request on the engine thread: its rate where requests leave (``CarrierSendPace``).
    let sendPaces: [String: CarrierSendPace]
    /// The global cap where requests leave (``GlobalSendPace``), shared by `sendPaces`; nil without `global_rate`.
    let globalSendPace: GlobalSendPace?
    /// Bumped each time the cluster lease is lost, before a new one is taken: a request waiting at a pace
    /// (``CarrierSendPace``) leaves only under the lease it was claimed under (its claims were settled `unknown`
    /// when the lease was lost, by this node or a survivor).
    let leaseTerm = Atomic<Int>(0)

    public init(store: any MessageStore, adapters: [String: any CarrierAdapter], config: LoaConfig, clock: any TimeSource, logger: Logger) {
        self.store = store
        self.adapters = adapters
        self.carriers = config.carriers
        self.retry = config.retry
        self.contactPolicy = config.contactPolicy
        self.receiptTimeoutSeconds = config.receiptTimeoutSeconds
        self.clock = clock
        self.logger = logger
        self.lease = store.cluster
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
        let paced = Set(config.carriers.filter { c in (adapters[c.name]?.maxBatch ?? 1) <= 1 && adapters[c.name] is any OneExchangeAdapter }.map(\.name))
        initialPlan = DispatchPlan(carriers: config.carriers.map { c in
            DispatchPlan.Carrier(name: c.name, batchMax: batches[c.name] ?? 1, batchMin: c.batchMin, rateInSegments: c.rateInSegments,
                                 remainderCarrier: c.remainderCarrier)
        })
        var initial = State(carriers: Dictionary(uniqueKeysWithValues: config.carriers.map { c in
            // max_in_flight counts requests; a batch is one request.
            let pacer = CarrierPacer(rate: c.rate, requestsPerSecond: c.requestsPerSecond, maxInFlight: c.maxInFlight,
                                     batchMax: batches[c.name] ?? 1, batchMin: c.batchMin,
                                     claimAheadSeconds: paced.contains(c.name) ? CarrierSendPace.claimAheadSeconds : 0, now: now)
            // The probe before any pace is known: two seconds at the configured rate (or max_in_flight, if more).
            let handoff = c.paceFromReceipts
                ? HandoffWindow(settings: .init(probeMessages: max(c.maxInFlight, Int(min(c.rate * 2, 100_000))),
                                                receiptTimeoutMillis: Int64(config.receiptTimeoutSeconds * 1000)), now: now)
                : nil
            return (c.name, CarrierState(pacer: pacer, identical: IdenticalFailures(threshold: c.pauseAfterIdenticalFailures), handoff: handoff))
        }))
        // The global cap's burst: a tenth of a second of it, at the claim and where requests leave.
        let global = config.globalRate.map { (rate: $0, burst: TokenBucket.burst(rate: $0, seconds: 0.1)) }
        let globalPace = global.flatMap { g in paced.isEmpty ? nil : GlobalSendPace(rate: g.rate, burst: g.burst, now: now) }
        globalSendPace = globalPace
        sendPaces = Dictionary(uniqueKeysWithValues: paced.compactMap { name in
            initial.carriers[name].map { (name, CarrierSendPace(rate: $0.pacer.allowedRate, burst: $0.pacer.sendBurst, inFlight: $0.pacer.inFlightLimit,
                                                               inParts: config.carriers.first { $0.name == name }?.rateInSegments ?? true,
                                                               global: globalPace, clock: clock)) }
        })
        if let g = global { initial.global = TokenBucket(rate: g.rate, burst: g.burst, now: now) }
        let fromReceipts = config.carriers.filter(\.paceFromReceipts).map(\.name)
        if !fromReceipts.isEmpty {
            // After a restart, what the gateways still hold of ours: `sent` without a pass-on receipt.
            // Streamed in batches into the windows, and only what is not already taken as lost: a 10M store with
            // its receipts lost made this an array of 10M tuples (``HandedOverSet``).
            let windows = Mutex(initial.carriers.compactMapValues(\.handoff))
            let since = windows.withLock { $0.values.map { $0.lostCutoff(now: now) }.min() ?? now }
            do {
                try store.handedOverNotPassedOn(carriers: fromReceipts, since: since) { rows in
                    windows.withLock { w in
                        for (carrier, list) in Dictionary(grouping: rows, by: \.carrier) {
                            w[carrier]?.restore(list.lazy.map { (id: $0.id, at: $0.at) })
                        }
                    }
                }
                for (carrier, window) in windows.withLock({ $0 }) { initial.carriers[carrier]?.handoff = window }
            } catch {
                logger.error("outstanding hand-offs not read; the deadline windows start empty", ["error": "\(error)"])
            }
        }
        state = Mutex(initial)
    }

    /// A receipt for a carrier's message arrived (the receipt endpoint calls this after storing it). A pass-on
    /// receipt (smsc-accepted, buffered, any final one) takes the message out of the carrier's handoff window and
    /// teaches it the gateway's pace. `messageID` nil: a receipt keyed by the gateway's id only.
    /// `elsewhere`: another node applied it (``ClusterReceiptFeed``).
    public func receipt(carrier: String, messageID: Int64?, status: ReceiptStatus, elsewhere: Bool = false) {
        let now = clock.now()
        let (event, held) = state.withLock { s -> (HandoffWindow.Event?, Bool) in
            // Changed in place (optional chaining through the dictionary): a copy would copy the window's maps.
            guard s.carriers[carrier]?.handoff != nil else { return (nil, false) }
            let e = s.carriers[carrier]?.handoff?.heardFrom(at: now)
            // Every receipt status says the gateway moved the message on; one that expired in its queue did not
            // take the link's time (named, not matched as a case: `expired` is a status of issue 17's receipts).
            if s.carriers[carrier]?.handoff?.passedOn(messageID, at: now, pace: status.name != "expired") == true {
                s.passedOn[carrier, default: 0] += 1
                if elsewhere { s.passedOnElsewhere[carrier, default: 0] += 1 }
            }
            let held = s.carriers[carrier]?.handoffHeld ?? false
            s.carriers[carrier]?.handoffHeld = false
            return (e, held)
        }
        if held { worker.wake() }
        if event == .resumed { logger.notice("carrier sends receipts again: its hand-offs are held to the deadline again", ["carrier.name": carrier]) }
    }

    /// Starts the dispatch thread.
    public func start() {
        observeCluster()
        // Receipts for this node's messages that another node took (several daemons on one PostgreSQL behind one
        // receipt URL): the hand-off windows hear them as their own.
        if carriers.contains(where: \.paceFromReceipts), let feed = store as? any ClusterReceiptFeed {
            feed.observeOtherNodesReceipts { [self] notes in
                for n in notes { self.receipt(carrier: n.carrier, messageID: n.messageID, status: n.status, elsewhere: true) }
            }
        }
        lease?.observe { [self] event in self.clusterEvent(event) }
        worker.start { [self] _ in self.loop() }
    }

    /// The lease thread's news: a lost lease stops the claims until it is taken again (logged once each way).
    func clusterEvent(_ event: ClusterEvent) {
        switch event {
        case .lost(let reason):
            leaseTerm.add(1, ordering: .sequentiallyConsistent)
            let first = state.withLock { s -> Bool in
                defer { s.leaseLost = true }
                return !s.leaseLost
            }
            if first {
                logger.error("dispatch paused: this node's cluster lease ended; nothing is claimed or sent until it holds one again",
                             ["reason": reason, "store.node": lease?.node ?? ""])
            }
        case .regained(let epoch, let settled):
            let was = state.withLock { s -> Bool in
                defer { s.leaseLost = false; s.workHint = true }
                return s.leaseLost
            }
            if was {
                logger.notice("dispatch resumed: this node holds a cluster lease again",
                              ["store.node": lease?.node ?? "", "epoch": "\(epoch)", "settled_unknown": "\(settled)"])
            }
            worker.wake()
        case .members, .tookOver:
            break
        }
    }

    /// Whether this node may claim and send now: it holds its cluster lease (always, without a cluster).
    /// Nor while outcomes wait to be recorded after a store failure (which bounds them, ``Unrecorded``).
    var mayClaim: Bool {
        if unrecordedCount > 0 { return false }
        guard let lease else { return true }
        return lease.holds() && !state.withLock { $0.leaseLost }
    }

    /// The operator resumes a carrier paused after identical permanent answers; false when it was not paused.
    public func resume(carrier: String) -> Bool {
        let was = state.withLock { s -> Bool in
            guard s.carriers[carrier]?.identical.isPaused == true else { return false }
            s.carriers[carrier]?.identical.resume()
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
                let cs = s.carriers[c.name]
                var p = cs?.pacer ?? CarrierPacer(rate: c.rate, maxInFlight: c.maxInFlight, now: now)
                let breaker = cs?.breaker.state ?? .closed
                let handoff = cs?.handoff
                return CarrierStatus(name: c.name, configuredRate: c.rate, maxInFlight: c.maxInFlight,
                                     inFlight: p.inFlight, currentRate: Double(recent) / 10,
                                     allowedRate: p.allowedRate, breaker: breaker,
                                     maxBatch: batch, tokens: p.tokens(now: now),
                                     segmentsSent: s.segmentsSent[c.name] ?? 0, requests: s.requests[c.name] ?? 0,
                                     pausedUntil: p.pausedUntil(now: now),
                                     handoffOutstanding: handoff?.outstandingCount ?? 0, passOnRate: handoff?.pace,
                                     handoffLimiting: handoff.map { !$0.isSilent } ?? false,
                                     handoffPassedOn: s.passedOn[c.name] ?? 0, handoffPassedOnElsewhere: s.passedOnElsewhere[c.name] ?? 0,
                                     requestsPerSecond: c.requestsPerSecond,
                                     allowedRequestRate: p.allowedRequestRate, batchTarget: p.batchTarget, minBatch: p.batchMin,
                                     breakerCause: breaker == .closed ? nil : s.breakerCause[c.name],
                                     authRefused: s.authRefused[c.name], pausedReason: cs?.identical.pausedReason,
                                     answers: s.answers[c.name] ?? [:], share: store.cluster == nil ? nil : p.fraction)
            }
        }
    }

    // MARK: - The loop

    /// Each round: record the answers that came, refresh the campaigns from the store, ask the plan for each
    /// carrier's turn, execute its actions (claims and launches, remainder moves), and sleep until its wake time.
    func loop() {
        var lastAdvance: UnixMillis = 0
        var lastSweep: UnixMillis = 0
        var active: [ActiveCampaign] = []
        // The campaigns as the plan sees them and by id for the claims, remade when `active` is read.
        var planned: [DispatchPlan.Campaign] = []
        var byID: [String: ActiveCampaign] = [:]
        var lastFailover: UnixMillis = 0
        var plan = initialPlan
        var watch = CampaignWatch()
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
            retryUnrecorded(now: now)
            if stopping {
                if remaining == 0 && unrecordedCount == 0 { break }
                if now >= drainDeadline {
                    abandonInFlight()
                    // Answers that came after the snapshot are recorded as answered, not abandoned.
                    let late = state.withLock { s in
                        defer { s.finished.removeAll() }
                        return s.finished
                    }
                    if !late.isEmpty { recordFinished(late, active: active) }
                    giveUpUnrecorded()
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
                    logCampaignEvents(watch.look(active.map { ($0.id, $0.state) }), active: active)
                    planned = active.map(Self.planned)
                    byID = Dictionary(active.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
                    storeWorked()
                } catch {
                    storeFailed(error)
                }
                lastAdvance = now
                if now - lastSweep >= min(60_000, Int64(receiptTimeoutSeconds * 250)) {
                    // Receipts overdue: `sent` → `unknown` (a late receipt can still settle them).
                    lastSweep = now
                    do {
                        var overdue = 0, n = 0
                        repeat {
                            n = try store.expireReceipts(olderThan: now - Int64(receiptTimeoutSeconds * 1000))
                            overdue += n
                        } while n == 20_000
                        logOverdueReceipts(overdue)
                    } catch {
                        logger.error("receipt sweep failed", ["error": "\(error)"])
                    }
                }
            }
            // A claim that failed may have committed unacknowledged: released once the store answers again.
            releaseUnsentClaims()
            // The plan decides (``DispatchPlan``); this thread executes its actions and sleeps until its wake time.
            plan.share = nodeFraction
            var round = plan.round(now: now, campaigns: planned, workArrived: hint)
            if now - lastFailover >= 250 {
                lastFailover = now
                failover(active: active, now: now)
            }
            // Fenced: a node without its lease claims nothing (the store refuses in the claim's transaction too).
            let claiming = mayClaim
            for carrier in round.order where claiming {
                guard var turn = state.withLock({ s in plan.turn(carrier, in: &round, carriers: &s.carriers, global: &s.global) }) else {
                    continue
                }
                var outcome: DispatchPlan.Outcome?
                while let action = plan.step(&turn, after: outcome) {
                    outcome = execute(action, campaigns: byID, now: now)
                }
                state.withLock { s in plan.finish(turn, carriers: &s.carriers, global: &s.global) }
            }
            for notice in round.notices {
                if case .silenced(let n) = notice.event {
                    logger.warning("no receipt from the carrier for a minute while messages are outstanding: hand-offs are no longer held to the deadline",
                                   ["carrier.name": notice.carrier, "outstanding": "\(n)"])
                }
            }
            waitUntil(round.wake)
        }
    }

    /// A campaign as the plan sees it.
    static func planned(_ c: ActiveCampaign) -> DispatchPlan.Campaign {
        DispatchPlan.Campaign(id: c.id, running: c.state == .running, deadlineAt: c.deadlineAt, windows: c.windows,
                              urgent: c.priority == .urgent, weight: c.weight, maxRate: c.maxRate, queuedOn: c.carriers,
                              allowedCarriers: c.allowedCarriers)
    }

    /// Executes one of the plan's actions against the store and the adapters, and says what it found.
    func execute(_ action: DispatchPlan.Action, campaigns: [String: ActiveCampaign], now: UnixMillis) -> DispatchPlan.Outcome {
        switch action {
        case .claim(let c):
            guard let campaign = campaigns[c.campaign] else { return .claimed(count: 0, extraParts: 0) }
            let claimed: [OutgoingMessage]
            // The lease term before the claim's transaction: its messages leave only under it (``leaseTerm``). Read
            // after the claim, a node stopped between the claim and the launch (SIGSTOP past its lease) read the term
            // its resume bumped, and sent under its new lease what it had claimed under the old one, settled `unknown`.
            let term = leaseTerm.load(ordering: .sequentiallyConsistent)
            do {
                claimed = try store.claim(campaign: c.campaign, carrier: c.carrier, limit: c.limit, now: now, policy: contactPolicy,
                                          deadline: c.deadline, until: c.until)
            } catch {
                claimFailed(error, campaign: c.campaign, carrier: c.carrier)
                claimed = []
            }
            launch(claimed, sender: campaign.sender, deadline: c.deadline, until: c.until, carrier: c.carrier, sizes: c.batches(of: claimed.count),
                   term: term, now: now)
            return .claimed(count: claimed.count, extraParts: claimed.reduce(0) { $0 + max(0, $1.segments - 1) })
        case .countReady(let campaign, let carrier, let limit):
            do {
                let r = try store.batchReadiness(campaign: campaign, carrier: carrier, now: now, limit: limit)
                return .ready(count: r.ready, moreMayCome: r.moreMayCome)
            } catch {
                logger.error("claim failed", ["campaign.id": campaign, "carrier.name": carrier, "error": "\(error)"])
                return .unreadable
            }
        case .moveRemainder(let campaign, let from, let to, let limit, let reason):
            do {
                let moved = try store.reroute(campaign: campaign, from: from, to: to, limit: limit, reason: reason)
                logger.notice("batch remainder moved", ["campaign.id": campaign, "carrier.name": from, "to": to, "count": "\(moved)"])
            } catch {
                logger.error("batch remainder move failed", ["campaign.id": campaign, "carrier.name": from, "error": "\(error)"])
            }
            return .done
        case .failRemainder(let campaign, let carrier, let limit, let deadline, let reason):
            // No carrier to take it: claimed and failed with the reason, never sent (the API would refuse it).
            var claimed: [OutgoingMessage] = []
            do {
                claimed = try store.claim(campaign: campaign, carrier: carrier, limit: limit, now: now, deadline: deadline)
            } catch {
                claimFailed(error, campaign: campaign, carrier: carrier)
            }
            logger.warning("batch remainder failed", ["campaign.id": campaign, "carrier.name": carrier, "count": "\(claimed.count)", "reason": reason])
            do {
                try store.record(claimed.map { SendOutcome($0, result: .failed(detail: reason)) })
            } catch {
                logger.error("recording outcomes failed", ["count": "\(claimed.count)", "error": "\(error)"])
            }
            return .done
        }
    }

    /// Sleeps until `deadline` or a wake-up (one that came since the last wait returns at once).
    func waitUntil(_ deadline: UnixMillis) {
        worker.wait(until: .after(seconds: Double(max(0, deadline - clock.now())) / 1000))
    }

    /// Starts `messages` in requests of the plan's `sizes` (``DispatchPlan/batches(of:batchMax:)``: at most the
    /// adapter's batch, split evenly).
    /// `until`: the send window's close; a request still waiting at its carrier's pace then (or at `deadline`) never
    /// leaves (``GatewayOutcome/heldPastCutoff``).
    /// `term`: the ``leaseTerm`` read before the claim's transaction; the requests leave only while it holds.
    func launch(_ messages: [OutgoingMessage], sender: String, deadline: UnixMillis, until: UnixMillis = .max, carrier: String, sizes: [Int],
                term: Int, now: UnixMillis) {
        guard !messages.isEmpty, let adapter = adapters[carrier], let base = receiptBase[carrier] else { return }
        let perMessageURL = receiptPerMessage.contains(carrier)
        let pace = sendPaces[carrier]
        state.withLock { s in
            if let p = s.carriers[carrier]?.pacer { pace?.follow(rate: p.allowedRate, burst: p.sendBurst, inFlight: p.inFlightLimit) }
            for m in messages { s.inFlight[m.id] = m }
            s.carriers[carrier]?.handoff?.handedOver(messages.lazy.map(\.id), at: now)
            s.carriers[carrier]?.breaker.started()
            let sec = now / 1000
            var started = s.started[carrier, default: [:]]
            started[sec, default: 0] += messages.count
            s.started[carrier] = started.count > 12 ? started.filter { $0.key > sec - 11 } : started
            s.requests[carrier, default: 0] += Int64(sizes.count)
        }
        func sms(_ m: OutgoingMessage) -> OutgoingSMS {
            OutgoingSMS(id: m.id, from: sender, to: m.phone, text: m.text, encoding: m.encoding, segments: m.segments,
                        receiptURL: perMessageURL ? base + String(m.id) : base, validUntil: deadline)
        }
        let startedAt = ContinuousClock.now
        if adapter.maxBatch <= 1, let exchange = adapter as? any OneExchangeAdapter {
            // No task per message: the requests are built here and handed to the engine at once (one lock, at
            // most one wake-up of its thread); each answer is classified on the engine thread and gathered in
            // `roundAnswers`, which the end of its engine round hands on.
            // The fence: the engine asks the lease just before each request leaves (``CurlEngine``'s gate).
            var gate: (@Sendable () -> Bool)?
            if let lease {
                // The lease asked first: a new one is granted only after the term moved on (``leaseTerm``).
                gate = { [self] in lease.holds() && leaseTerm.load(ordering: .sequentiallyConsistent) == term }
            }
            // A request waiting at the pace (up to the claim-ahead, longer if the pacer slowed meanwhile) leaves only
            // before its window's close and its deadline: nothing is sent outside its window or after its deadline.
            let cutoff = min(deadline, until)
            if pace != nil {
                let clock = clock
                gate = { [gate] in (gate?() ?? true) && clock.now() < cutoff }
            }
            exchange.start(messages.map(sms), round: self, gate: gate, pace: pace) { [self] i, outcome in
                requestFinished(carrier, since: startedAt)
                var outcome = outcome
                // Refused by the gate with the lease still held under the same term: it was the time.
                if pace != nil, outcome.isFenced, lease.map({ $0.holds() && leaseTerm.load(ordering: .sequentiallyConsistent) == term }) ?? true,
                   clock.now() >= cutoff {
                    outcome = .heldPastCutoff
                }
                roundAnswers.withLock { $0.append(messages[i], outcome) }
            }
            // Messages the adapter refused without sending were answered on this thread: no round end follows them.
            roundEnded()
            return
        }
        // Any other adapter: a task per request, of one message or of a batch. One-text-per-request gateways get
        // batches of equal texts (a stable sort keeps id order within a text).
        let ordered = adapter.batchesShareText
            ? messages.enumerated().sorted { ($0.element.text, $0.element.encoding == .ucs2 ? 1 : 0, $0.offset) < ($1.element.text, $1.element.encoding == .ucs2 ? 1 : 0, $1.offset) }.map(\.element)
            : messages
        var start = 0
        for size in sizes where start < ordered.count {
            let chunk = Array(ordered[start..<min(start + size, ordered.count)])
            start += size
            let outgoing = chunk.map(sms)
            Task.detached { [self] in
                // The fence for a task-based adapter: the lease is asked right before its send.
                if let lease, !lease.holds() || self.leaseTerm.load(ordering: .sequentiallyConsistent) != term {
                    self.finish(chunk, Array(repeating: .fenced, count: chunk.count))
                    return
                }
                let outcomes = await adapter.send(batch: outgoing)
                self.requestFinished(carrier, since: startedAt)
                self.finish(chunk, outcomes)
            }
        }
    }
}
