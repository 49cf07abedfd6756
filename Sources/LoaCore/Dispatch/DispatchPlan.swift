/// The dispatcher's decisions in one place: which campaign to claim how many messages from for which carrier,
/// in what batch sizes, and when to look again.
///
/// It combines the policies that each hold one limit — send windows and deadlines (``SendWindows``), the
/// carrier's rates, requests in flight and batch fill (``CarrierPacer``), its health (``CircuitBreaker``,
/// ``IdenticalFailures``), what its gateway can still pass on before the deadline (``HandoffWindow``), the global
/// cap and each campaign's `max_rate` (``TokenBucket``) and the share of each campaign (``FairShare``) — and
/// returns actions; the dispatcher thread gathers the inputs, executes the actions against the store and the
/// adapters, and sleeps until ``Round/wake``. Pure and on the caller's clock: tested without a store, threads or
/// sleeps.
///
/// One round, as the dispatcher runs it:
/// 1. ``round(now:campaigns:workArrived:)`` starts it: the wake time for send windows that open later.
/// 2. For each carrier of ``Round/order``, under the lock that guards the carriers' state:
///    ``turn(_:in:carriers:global:)`` takes the carrier's tokens (and the global cap's) and returns its
///    ``Turn``, or nil when it sends nothing now (the round's wake then says when it may).
/// 3. Outside the lock, ``step(_:after:)`` returns the turn's actions one at a time — claim, count what is ready,
///    move or fail a remainder — each with the outcome of the one before, until it returns nil.
/// 4. Under the lock again, ``finish(_:carriers:global:)`` gives back what the turn did not use and charges
///    long messages' extra parts.
///
/// **Why `inout` and not a returned mutation.** The carriers' state is shared with the threads that finish
/// requests (a finished request frees a slot in flight, a throttling answer slows the pacer), so tokens must be
/// taken under the same lock as they are read; a bucket's take depends on its refill up to `now`, which a
/// returned "take n tokens" would have to repeat. So ``turn(_:in:carriers:global:)`` and
/// ``finish(_:carriers:global:)`` change the state they are given in place — everything they read or change is
/// in their parameters and the plan — and the caller holds the lock around the call. What the plan alone owns
/// (the fair shares, the campaigns' `max_rate` buckets, the idle and remainder marks) it keeps in itself.
///
/// **Per carrier in turn.** A carrier's turn ends (unused global tokens given back) before the next carrier's
/// starts, so a carrier whose campaigns have little queued leaves the global cap to the others in the same round.
/// The carrier that goes first moves on by one each round (``Round/order``): with a global cap below the carriers'
/// rates, a fixed order gave the whole cap to the first carrier configured and starved the others.
public struct DispatchPlan: Sendable {
    /// A running (or paused, or scheduled) campaign as the plan needs it.
    public struct Campaign: Sendable, Equatable {
        public var id: String
        /// `running`: paused and scheduled campaigns send nothing.
        public var running: Bool
        /// Nothing is claimed at or after it.
        public var deadlineAt: UnixMillis
        public var windows: SendWindows
        public var urgent: Bool
        public var weight: Int
        /// Messages (SMS parts) per second over all its carriers, nil: no cap.
        public var maxRate: Double?
        /// Carriers holding its queued messages (whether or not their retry time has come).
        public var queuedOn: [String]
        /// The carriers it may use (empty: any): a remainder moves only to one of them.
        public var allowedCarriers: [String]

        public init(id: String, running: Bool = true, deadlineAt: UnixMillis, windows: SendWindows, urgent: Bool = false,
                    weight: Int = 1, maxRate: Double? = nil, queuedOn: [String], allowedCarriers: [String] = []) {
            self.id = id
            self.running = running
            self.deadlineAt = deadlineAt
            self.windows = windows
            self.urgent = urgent
            self.weight = weight
            self.maxRate = maxRate
            self.queuedOn = queuedOn
            self.allowedCarriers = allowedCarriers
        }
    }

    /// A carrier's fixed settings (its changing state is a ``CarrierState``).
    public struct Carrier: Sendable, Equatable {
        public var name: String
        /// Most recipients per request (1: one message per request).
        public var batchMax: Int
        /// Fewest recipients per request (`batch.min`; 1: none).
        public var batchMin: Int
        /// The carrier counts SMS parts: long messages pay for their extra parts.
        public var rateInSegments: Bool
        /// Where a remainder below `batchMin` goes (nil: it fails with the reason).
        public var remainderCarrier: String?

        public init(name: String, batchMax: Int = 1, batchMin: Int = 1, rateInSegments: Bool = true, remainderCarrier: String? = nil) {
            self.name = name
            self.batchMax = max(1, batchMax)
            self.batchMin = max(1, batchMin)
            self.rateInSegments = rateInSegments
            self.remainderCarrier = remainderCarrier
        }
    }

    public struct Settings: Sendable, Equatable {
        /// The fewest messages a carrier may claim per round (one claim transaction); batching carriers claim up to
        /// 20 batches, and no carrier more than 10,000.
        public var claimBatch = 500
        /// How long a campaign's messages below its carrier's `batch.min` wait for more before they are a remainder.
        public var remainderWaitMillis: Int64 = 30_000
        /// A claim that found fewer messages than asked: the campaign is not asked again on that carrier for this long.
        public var idleAfterShortMillis: Int64 = 250
        /// A campaign waiting for a full minimum batch is asked again after this long.
        public var idleWhileWaitingMillis: Int64 = 1_000
        /// The longest sleep: new campaigns, retries coming due and sweeps are looked at this often.
        public var lookAgainMillis: Int64 = 500
        public init() {}
    }

    /// A campaign on a carrier (the idle and remainder marks are per pair).
    struct Key: Hashable, Sendable {
        var campaign: String
        var carrier: String
    }

    public let carriers: [Carrier]
    public let settings: Settings
    /// Per carrier: the campaigns' fractional credit.
    private var fair: [String: FairShare] = [:]
    /// Per campaign with a `max_rate`, over all its carriers.
    private var campaignBuckets: [String: TokenBucket] = [:]
    /// Campaign on carrier with nothing claimable until then.
    private var idleUntil: [Key: UnixMillis] = [:]
    /// Campaign on carrier below the carrier's `batch.min` since then.
    private var remainderSince: [Key: UnixMillis] = [:]
    /// Rounds started: which carrier goes first.
    private var rounds = 0
    /// This node's fraction of the cluster's limits (``ClusterShare``; 1: a daemon alone). A campaign's `max_rate`
    /// holds for the sum of the nodes like a carrier's rate: each node's bucket takes this fraction of the rate and
    /// of its burst (at least one message), so n nodes together claim the campaign's rate, not n times it.
    public var share: Double = 1

    public init(carriers: [Carrier], settings: Settings = Settings()) {
        self.carriers = carriers
        self.settings = settings
    }

    // MARK: - A round

    /// Something a carrier's state said in a round that an operator should hear of.
    public struct Notice: Sendable, Equatable {
        public var carrier: String
        public var event: HandoffWindow.Event
    }

    /// One round: its time, the campaigns, and when to look again.
    public struct Round: Sendable, Equatable {
        public let now: UnixMillis
        public let campaigns: [Campaign]
        /// The carriers' names in the order their turns go this round.
        public let order: [String]
        let workArrived: Bool
        /// When the dispatcher should look again (at most ``Settings/lookAgainMillis`` away; sooner when a window
        /// opens, a breaker may probe, tokens gather or a claim was made).
        public internal(set) var wake: UnixMillis
        public internal(set) var notices: [Notice] = []
    }

    /// Starts a round at `now`. `workArrived`: a campaign was committed or a carrier resumed since the last one,
    /// so campaigns found idle are asked again and batches wait to fill again.
    public mutating func round(now: UnixMillis, campaigns: [Campaign], workArrived: Bool) -> Round {
        if workArrived { idleUntil.removeAll() }
        var wake = now + settings.lookAgainMillis
        // Outside its daily windows a campaign sends nothing: wake when the next window opens.
        for c in campaigns where c.running && !c.queuedOn.isEmpty && !c.windows.isOpen(at: now) {
            wake = min(wake, max(now + 1, c.windows.nextOpen(after: now)))
        }
        let first = carriers.isEmpty ? 0 : rounds % carriers.count
        rounds &+= 1
        let order = (carriers[first...] + carriers[..<first]).map(\.name)
        return Round(now: now, campaigns: campaigns, order: order, workArrived: workArrived, wake: wake)
    }

    /// A carrier's part of a round: what it may claim, stepped through by ``DispatchPlan/step(_:after:)``.
    public struct Turn: Sendable {
        public let carrier: Carrier
        /// What the carrier's pacer granted: messages, in requests.
        public let grantedMessages: Int
        public let grantedRequests: Int
        /// The most messages this turn claims: the grant within the per-round cap, the hand-off room and the global cap.
        public let total: Int
        /// The campaigns it serves, in order.
        public let campaigns: [Campaign]
        let now: UnixMillis
        /// Fair shares of `total` by campaign (empty for a carrier with a minimum batch: campaigns take turns).
        public let shares: [String: Int]
        /// Messages claimed so far, in how many requests, and their SMS parts beyond the first.
        public internal(set) var used = 0
        public internal(set) var requests = 0
        public internal(set) var extraParts = 0
        var hungry: [Campaign] = []
        var index = 0
        var secondPass = false
        /// The campaign being served and its fair share (nil outside the first pass).
        var current: (campaign: Campaign, share: Int?)?
        var pending: Pending?
    }

    enum Pending: Sendable, Equatable {
        case claim(asked: Int)
        case readiness(wanted: Int)
        case remainder
    }

    /// The carrier's turn in `round`, with its tokens taken from `carriers` and `global`; nil when it claims
    /// nothing now (no running campaign with queued work in its window, no hand-off room, paused, breaker open,
    /// no tokens). Call under the lock that guards `carriers`.
    public mutating func turn(_ name: String, in round: inout Round, carriers states: inout [String: CarrierState],
                              global: inout TokenBucket?) -> Turn? {
        // Taken out of the dictionary and put back: the state is changed in place, where a copy would copy the
        // hand-off window's maps on every round.
        guard let carrier = carriers.first(where: { $0.name == name }), var s = states.removeValue(forKey: name) else { return nil }
        defer { states[name] = s }
        let now = round.now
        let running = round.campaigns.filter {
            $0.running && $0.deadlineAt > now && $0.queuedOn.contains(name) && $0.windows.isOpen(at: now)
                && (idleUntil[Key(campaign: $0.id, carrier: name)] ?? 0) <= now
        }
        guard let deadline = running.map(\.deadlineAt).min() else { return nil }
        // What the gateway can still pass on before the earliest deadline (``HandoffWindow``): nothing more while
        // it holds all it can; a pass-on receipt wakes the dispatcher.
        var room = Int.max
        if s.handoff != nil {
            if let event = s.handoff?.advance(to: now) { round.notices.append(Notice(carrier: name, event: event)) }
            room = s.handoff?.room(deadline: deadline, now: now) ?? .max
            s.handoffHeld = room == 0
        }
        if room == 0 { return nil }
        // Paused after identical permanent answers: only the operator resumes it (and wakes the dispatcher).
        if s.identical.isPaused { return nil }
        if round.workArrived { s.pacer.workArrived() }
        let allowance = s.breaker.allowance(now: now)
        if allowance == 0 {
            if let reopens = s.breaker.reopensAt() { round.wake = min(round.wake, max(now + 1, reopens)) }
            return nil
        }
        let decision = s.pacer.decide(now: now, maxRequests: allowance ?? .max)
        guard case .claim(let granted, let grantedRequests) = decision else {
            // Let a few tokens gather so one claim transaction carries several messages.
            if case .wait(let until?) = decision { round.wake = min(round.wake, max(until, now + 2)) }
            return nil
        }
        round.wake = min(round.wake, now + 2)
        let perRound = min(10_000, max(settings.claimBatch, carrier.batchMax * 20))
        let asked = min(granted, perRound, room)
        // The global cap, in the carriers' units: what the pacer grants and it refuses goes back.
        var total = asked
        if var g = global {
            total = g.take(upTo: asked, now: now)
            if total == 0 { round.wake = min(round.wake, max(g.whenAvailable(1, now: now), now + 2)) }
            global = g
        }
        if total == 0 {
            s.pacer.settle(granted: (granted, grantedRequests), used: (0, 0), now: now)
            return nil
        }
        // A carrier with a minimum batch is not split among campaigns (each share could fall below the minimum):
        // the campaigns take the grant in turn.
        let shares = carrier.batchMin > 1 ? [:]
            : fair[name, default: FairShare()].split(total, among: running.map { FairShare.Claimant(id: $0.id, weight: $0.weight, urgent: $0.urgent) })
        return Turn(carrier: carrier, grantedMessages: granted, grantedRequests: grantedRequests, total: total,
                    campaigns: running, now: now, shares: shares)
    }

    // MARK: - A turn's actions

    /// Claim up to `limit` queued messages of `campaign` for `carrier`, due before `deadline` and the send window's
    /// close `until`, and start them in requests of ``batches(of:)``.
    public struct Claim: Sendable, Equatable {
        public var campaign: String
        public var carrier: String
        public var limit: Int
        public var deadline: UnixMillis
        public var until: UnixMillis
        public var batchMax: Int

        /// The sizes of the requests that carry `count` claimed messages: at most `batchMax` each, split evenly (110
        /// with a batch of 100 go as 55 + 55, so no request falls below a `batch.min` of up to half the batch).
        public func batches(of count: Int) -> [Int] { DispatchPlan.batches(of: count, batchMax: batchMax) }
    }

    public enum Action: Sendable, Equatable {
        case claim(Claim)
        /// Count up to `limit` messages of the campaign that could be claimed for the carrier now, and whether more
        /// may come (retries waiting, requests in flight): answer ``Outcome/ready(count:moreMayCome:)``.
        case countReady(campaign: String, carrier: String, limit: Int)
        /// Move up to `limit` queued messages of the campaign to another carrier (a remainder below `batch.min`).
        case moveRemainder(campaign: String, from: String, to: String, limit: Int, reason: String)
        /// Claim up to `limit` messages of the campaign (due before `deadline`) and record them failed with `reason`
        /// (never sent).
        case failRemainder(campaign: String, carrier: String, limit: Int, deadline: UnixMillis, reason: String)
    }

    /// What executing an action found.
    public enum Outcome: Sendable, Equatable {
        /// A claim found `count` messages (all started) with `extraParts` SMS parts beyond the first.
        case claimed(count: Int, extraParts: Int)
        case ready(count: Int, moreMayCome: Bool)
        /// The store could not be read: the campaign waits.
        case unreadable
        case done
    }

    /// The turn's next action, given the outcome of the one before (nil for the first); nil when the turn is over.
    public mutating func step(_ turn: inout Turn, after outcome: Outcome? = nil) -> Action? {
        if let pending = turn.pending {
            turn.pending = nil
            if let action = resume(&turn, pending, outcome) { return action }
        }
        while let (campaign, wanted) = nextCandidate(&turn) {
            if let action = begin(&turn, campaign, wanted, readinessChecked: false) { return action }
        }
        return nil
    }

    /// Gives back what the turn did not use (the pacer's and the global cap's tokens) and charges long messages'
    /// extra parts where the carrier counts parts. Call under the lock that guards `carriers`.
    public func finish(_ turn: Turn, carriers states: inout [String: CarrierState], global: inout TokenBucket?) {
        let parts = turn.carrier.rateInSegments ? turn.extraParts : 0
        states[turn.carrier.name]?.pacer.settle(granted: (turn.grantedMessages, turn.grantedRequests), used: (turn.used, turn.requests),
                                                extraParts: parts, now: turn.now)
        global?.giveBack(turn.total - turn.used)
        if parts > 0 { global?.charge(parts, now: turn.now) }
    }

    /// The next campaign to serve and how many it may take: a carrier with a minimum batch serves its campaigns in
    /// turn with what is left; others give each its fair share, then what a campaign could not use to those that
    /// used all of theirs (work-conserving).
    private func nextCandidate(_ turn: inout Turn) -> (Campaign, Int)? {
        if turn.carrier.batchMin > 1 || turn.secondPass {
            let list = turn.carrier.batchMin > 1 ? turn.campaigns : turn.hungry
            guard turn.index < list.count, turn.used < turn.total else { return nil }
            let c = list[turn.index]
            turn.index += 1
            turn.current = (c, nil)
            return (c, turn.total - turn.used)
        }
        if turn.index < turn.campaigns.count {
            let c = turn.campaigns[turn.index]
            turn.index += 1
            let share = turn.shares[c.id] ?? 0
            turn.current = (c, share)
            return (c, share)
        }
        turn.secondPass = true
        turn.index = 0
        return nextCandidate(&turn)
    }

    /// Starts serving `campaign` with up to `wanted` messages: an action, or nil when it takes nothing now.
    private mutating func begin(_ turn: inout Turn, _ campaign: Campaign, _ wanted: Int, readinessChecked: Bool) -> Action? {
        var n = wanted
        let minBatch = turn.carrier.batchMin
        if minBatch > 1 && !readinessChecked {
            guard n >= minBatch else { return served(&turn, 0) }
            turn.pending = .readiness(wanted: wanted)
            return .countReady(campaign: campaign.id, carrier: turn.carrier.name, limit: minBatch)
        }
        if let cap = campaign.maxRate {
            let f = share.isNaN ? 0 : min(max(share, 0), 1)
            let rate = cap * f
            let burst = max(1, Int((Double(TokenBucket.burst(rate: cap, seconds: 0.1)) * f + 1e-9).rounded(.down)))
            var bucket = campaignBuckets[campaign.id] ?? TokenBucket(rate: rate, burst: burst, now: turn.now)
            // The share changes as nodes come and go (and the operator may change max_rate): the bucket follows.
            if abs(bucket.rate - TokenBucket.bounded(rate)) > 1e-9 { bucket.setRate(rate, now: turn.now) }
            if bucket.burst != burst { bucket.setBurst(burst, now: turn.now) }
            n = f > 0 ? bucket.take(upTo: n, now: turn.now) : 0
            campaignBuckets[campaign.id] = bucket
        }
        guard n > 0 else { return served(&turn, 0) }
        turn.pending = .claim(asked: n)
        return .claim(Claim(campaign: campaign.id, carrier: turn.carrier.name, limit: n, deadline: campaign.deadlineAt,
                            until: campaign.windows.closes(after: turn.now) ?? .max, batchMax: turn.carrier.batchMax))
    }

    /// Continues the campaign being served with the outcome of its last action.
    private mutating func resume(_ turn: inout Turn, _ pending: Pending, _ outcome: Outcome?) -> Action? {
        guard let campaign = turn.current?.campaign else { return nil }
        let key = Key(campaign: campaign.id, carrier: turn.carrier.name)
        switch pending {
        case .claim(let asked):
            var count = 0, extra = 0
            if case .claimed(let c, let e)? = outcome { (count, extra) = (min(max(0, c), asked), max(0, e)) }
            if campaign.maxRate != nil {
                campaignBuckets[campaign.id]?.giveBack(asked - count)
                // max_rate counts SMS parts: long messages pay for their extra parts.
                if extra > 0 { campaignBuckets[campaign.id]?.charge(extra, now: turn.now) }
            }
            turn.extraParts += extra
            if count < asked { idleUntil[key] = turn.now + settings.idleAfterShortMillis }
            turn.requests += Self.batches(of: count, batchMax: turn.carrier.batchMax).count
            return served(&turn, count)
        case .readiness(let wanted):
            guard case .ready(let ready, let more)? = outcome else {
                idleUntil[key] = turn.now + settings.idleWhileWaitingMillis
                return served(&turn, 0)
            }
            switch remainder(campaign, carrier: turn.carrier, ready: ready, moreMayCome: more, now: turn.now) {
            case .send:
                return begin(&turn, campaign, wanted, readinessChecked: true)
            case .wait:
                idleUntil[key] = turn.now + settings.idleWhileWaitingMillis
                return served(&turn, 0)
            case .action(let a):
                turn.pending = .remainder
                return a
            }
        case .remainder:
            return served(&turn, 0)
        }
    }

    /// The campaign being served took `got` messages: a fair share not used is refunded, one used in full earns a
    /// place in the second pass. Always nil (no action), so callers can return it.
    private mutating func served(_ turn: inout Turn, _ got: Int) -> Action? {
        turn.used += got
        if let current = turn.current, let share = current.share {
            if got < share {
                fair[turn.carrier.name, default: FairShare()].refund(share - got, to: current.campaign.id)
            } else if share > 0 {
                turn.hungry.append(current.campaign)
            }
        }
        turn.current = turn.current.map { ($0.campaign, nil) }
        return nil
    }

    private enum RemainderStep { case send, wait, action(Action) }

    /// For a carrier with a minimum batch: a campaign with a full minimum batch sends; one with fewer waits while
    /// more may come (retries, requests in flight), at most ``Settings/remainderWaitMillis`` and never past what
    /// its deadline leaves; then its remainder moves to `batch.remainder_carrier` when the campaign allows it, else
    /// it fails naming the minimum (the gateway's API would refuse it).
    private mutating func remainder(_ campaign: Campaign, carrier: Carrier, ready: Int, moreMayCome: Bool, now: UnixMillis) -> RemainderStep {
        let key = Key(campaign: campaign.id, carrier: carrier.name)
        if ready >= carrier.batchMin {
            remainderSince[key] = nil
            return .send
        }
        if ready <= 0 { return .wait }
        let first = remainderSince[key] ?? now
        remainderSince[key] = first
        let wait = settings.remainderWaitMillis
        if moreMayCome && now - first < wait && campaign.deadlineAt - now > wait { return .wait }
        remainderSince[key] = nil
        let why = "\(ready) left, fewer than carrier \(carrier.name)'s batch.min \(carrier.batchMin)"
        if let target = carrier.remainderCarrier, campaign.allowedCarriers.isEmpty || campaign.allowedCarriers.contains(target) {
            return .action(.moveRemainder(campaign: campaign.id, from: carrier.name, to: target, limit: carrier.batchMin, reason: why))
        }
        let reason = "\(why), and no batch.remainder_carrier\(carrier.remainderCarrier != nil ? " the campaign allows" : ""); not sent"
        return .action(.failRemainder(campaign: campaign.id, carrier: carrier.name, limit: carrier.batchMin - 1,
                                      deadline: campaign.deadlineAt, reason: reason))
    }

    /// Request sizes for `count` messages: at most `batchMax` each, split evenly; the first `count % requests`
    /// carry one more.
    ///
    /// | count | batchMax | requests |
    /// |---|---|---|
    /// | 100 | 100 | 100 |
    /// | 110 | 100 | 55, 55 |
    /// | 201 | 100 | 67, 67, 67 |
    /// | 3 | 1 | 1, 1, 1 |
    public static func batches(of count: Int, batchMax: Int) -> [Int] {
        guard count > 0 else { return [] }
        let batch = max(1, batchMax)
        let n = (count + batch - 1) / batch
        return (0..<n).map { i in count / n + (i < count % n ? 1 : 0) }
    }
}
