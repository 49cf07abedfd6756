import Foundation
import Testing
@testable import LoaCore

/// The dispatcher's plan on a manual clock: a simulated store (queued counts per campaign and carrier) executes
/// the plan's actions the way the Dispatcher does, and the clock jumps to each round's wake time.
@Suite struct DispatchPlanTests {
    static let t0 = ISOTime.parse("2026-12-02T08:00:00Z")!
    static let allDay = try! SendWindows(["00:00-24:00"], timeZone: "UTC")

    struct Claimed: Equatable {
        var at: UnixMillis
        var campaign: String
        var carrier: String
        var batches: [Int]
        var count: Int { batches.reduce(0, +) }
    }

    /// The shell around the plan, as in the Dispatcher: it gathers inputs, runs each carrier's turn, executes the
    /// actions against a counted queue, and finishes the requests it started (at once, or never).
    struct Sim {
        let clock = ManualTimeSource(DispatchPlanTests.t0)
        var plan: DispatchPlan
        var states: [String: CarrierState]
        var global: TokenBucket?
        /// Campaigns as submitted; `queuedOn` is filled from `queued` each round.
        var campaigns: [DispatchPlan.Campaign]
        var queued: [String: [String: Int]] = [:]
        /// What `countReady` answers for "more may come" (retries waiting, requests in flight).
        var moreMayCome = true
        /// Requests finish right after the round that started them (a fast gateway); false: they stay in flight.
        var requestsFinish = true
        var claims: [Claimed] = []
        var actions: [DispatchPlan.Action] = []
        var failed = 0
        var nextID: Int64 = 1
        var lastRound: DispatchPlan.Round?

        init(carriers: [(DispatchPlan.Carrier, CarrierPacer)], campaigns: [DispatchPlan.Campaign], global: Double? = nil,
             handoffProbe: Int? = nil, pauseAfter: Int = 0) {
            plan = DispatchPlan(carriers: carriers.map(\.0))
            let now = clock.now()
            states = Dictionary(uniqueKeysWithValues: carriers.map { c, p in
                (c.name, CarrierState(pacer: p, identical: IdenticalFailures(threshold: pauseAfter),
                                      handoff: handoffProbe.map { HandoffWindow(settings: .init(probeMessages: $0), now: now) }))
            })
            self.global = global.map { TokenBucket(rate: $0, burst: TokenBucket.burst(rate: $0, seconds: 0.1), now: now) }
            self.campaigns = campaigns
        }

        var now: UnixMillis { clock.now() }

        /// One round at the clock's time.
        @discardableResult
        mutating func round(workArrived: Bool = false) -> DispatchPlan.Round {
            let now = clock.now()
            let input = campaigns.map { c in
                var c = c
                c.queuedOn = (queued[c.id] ?? [:]).filter { $0.value > 0 }.map(\.key).sorted()
                return c
            }
            var r = plan.round(now: now, campaigns: input, workArrived: workArrived)
            var started: [String: Int] = [:]
            for carrier in r.order {
                guard var turn = plan.turn(carrier, in: &r, carriers: &states, global: &global) else { continue }
                var outcome: DispatchPlan.Outcome?
                while let action = plan.step(&turn, after: outcome) {
                    actions.append(action)
                    outcome = execute(action, now: now, started: &started)
                }
                plan.finish(turn, carriers: &states, global: &global)
            }
            if requestsFinish {
                for (carrier, n) in started { for _ in 0..<n { states[carrier]?.pacer.finished() } }
            }
            lastRound = r
            return r
        }

        mutating func execute(_ action: DispatchPlan.Action, now: UnixMillis, started: inout [String: Int]) -> DispatchPlan.Outcome {
            switch action {
            case .claim(let c):
                let n = min(c.limit, queued[c.campaign]?[c.carrier] ?? 0)
                queued[c.campaign, default: [:]][c.carrier, default: 0] -= n
                let ids = (0..<Int64(n)).map { nextID + $0 }
                nextID += Int64(n)
                let sizes = c.batches(of: n)
                if n > 0 {
                    states[c.carrier]?.handoff?.handedOver(ids, at: now)
                    states[c.carrier]?.breaker.started()
                    claims.append(Claimed(at: now, campaign: c.campaign, carrier: c.carrier, batches: sizes))
                }
                started[c.carrier, default: 0] += sizes.count
                return .claimed(count: n, extraParts: 0)
            case .countReady(let campaign, let carrier, let limit):
                return .ready(count: min(limit, queued[campaign]?[carrier] ?? 0), moreMayCome: moreMayCome)
            case .moveRemainder(let campaign, let from, let to, let limit, _):
                let n = min(limit, queued[campaign]?[from] ?? 0)
                queued[campaign, default: [:]][from, default: 0] -= n
                queued[campaign, default: [:]][to, default: 0] += n
                return .done
            case .failRemainder(let campaign, let carrier, let limit, _, _):
                let n = min(limit, queued[campaign]?[carrier] ?? 0)
                queued[campaign, default: [:]][carrier, default: 0] -= n
                failed += n
                return .done
            }
        }

        /// Rounds from now until `end`, each at the previous round's wake time (bounded).
        mutating func run(until end: UnixMillis) {
            var rounds = 0
            while clock.now() < end && rounds < 100_000 {
                let r = round()
                clock.set(max(r.wake, clock.now() + 1))
                rounds += 1
            }
        }
    }

    static func campaign(_ id: String, deadline: UnixMillis = t0 + 3_600_000, windows: SendWindows = allDay, urgent: Bool = false,
                         weight: Int = 1, maxRate: Double? = nil, allowed: [String] = []) -> DispatchPlan.Campaign {
        DispatchPlan.Campaign(id: id, deadlineAt: deadline, windows: windows, urgent: urgent, weight: weight, maxRate: maxRate,
                              queuedOn: [], allowedCarriers: allowed)
    }

    static func carrier(_ name: String, rate: Double, requestsPerSecond: Double? = nil, maxInFlight: Int = 100, batchMax: Int = 1,
                        batchMin: Int = 1, remainder: String? = nil) -> (DispatchPlan.Carrier, CarrierPacer) {
        (DispatchPlan.Carrier(name: name, batchMax: batchMax, batchMin: batchMin, remainderCarrier: remainder),
         CarrierPacer(rate: rate, requestsPerSecond: requestsPerSecond, maxInFlight: maxInFlight, batchMax: batchMax, batchMin: batchMin,
                      now: t0))
    }

    // MARK: - Batches and request rates

    @Test func batchesFillToTheBatchSizeUnderARequestRate() {
        // 1000 messages/s allowed, but 2 requests/s: every request must carry a full 100, not what a round's tokens cover.
        var sim = Sim(carriers: [Self.carrier("k", rate: 1000, requestsPerSecond: 2, batchMax: 100)], campaigns: [Self.campaign("a")])
        sim.queued = ["a": ["k": 5_000]]
        sim.run(until: Self.t0 + 10_000)
        let batches = sim.claims.flatMap(\.batches)
        #expect(batches.allSatisfy { $0 == 100 }, "batches: \(Set(batches).sorted())")
        // One request at once, then one every 500 ms: 20 in 10 s.
        #expect(batches.count == 20, "requests: \(batches.count)")
        #expect(sim.claims.map(\.at) == (0..<20).map { Self.t0 + Int64($0) * 500 }, "each at its wake time")
    }

    @Test func batchesFillUnderAMessageRateAndLingerAtMostASecond() {
        // 100 messages/s and batches of 100: after the first batch the next waits a full second to fill, and the
        // round's wake time is exactly when it is full (or the usual look again in 500 ms, if that is sooner).
        var sim = Sim(carriers: [Self.carrier("k", rate: 100, batchMax: 100)], campaigns: [Self.campaign("a")])
        sim.queued = ["a": ["k": 1_000]]
        let first = sim.round()
        #expect(sim.claims == [Claimed(at: Self.t0, campaign: "a", carrier: "k", batches: [100])])
        #expect(first.wake == Self.t0 + 2, "a claim looks again at once")
        sim.clock.set(Self.t0 + 300)
        #expect(sim.round().wake == Self.t0 + 800)
        sim.clock.set(Self.t0 + 600)
        let lingering = sim.round()
        #expect(sim.claims.count == 1, "60 tokens: the batch lingers")
        #expect(lingering.wake == Self.t0 + 1_000, "wake when the batch is full")
        sim.clock.set(lingering.wake)
        sim.round()
        #expect(sim.claims.last == Claimed(at: Self.t0 + 1_000, campaign: "a", carrier: "k", batches: [100]))
    }

    @Test func lingeringEndsWhenTheQueueIsShortAndStartsAgainWithNewWork() {
        var sim = Sim(carriers: [Self.carrier("k", rate: 100, batchMax: 100)], campaigns: [Self.campaign("a")])
        sim.queued = ["a": ["k": 130]]
        sim.round()
        sim.clock.set(Self.t0 + 1_000)
        sim.round()
        // The second batch found only 30: the queue is short.
        #expect(sim.claims.map(\.count) == [100, 30])
        // Retries come due: with the queue short, what is there goes at once (no wait for a full batch).
        // The 70 tokens the short claim did not use went back: 95 now.
        sim.queued["a", default: [:]]["k"] = 20
        sim.clock.set(Self.t0 + 1_250)
        sim.round()
        #expect(sim.claims.map(\.count) == [100, 30, 20])
        // New work (a campaign committed) with 76 tokens: the batch waits to fill again, until it is full at 1.5 s.
        sim.queued["a", default: [:]]["k"] = 500
        sim.clock.set(Self.t0 + 1_260)
        let r = sim.round(workArrived: true)
        #expect(sim.claims.count == 3, "lingers for a full batch again")
        #expect(r.wake == Self.t0 + 1_500)
        sim.clock.set(r.wake)
        sim.round()
        #expect(sim.claims.last == Claimed(at: Self.t0 + 1_500, campaign: "a", carrier: "k", batches: [100]))
    }

    @Test func aRequestRateHoldsForOneMessagePerRequest() {
        var sim = Sim(carriers: [Self.carrier("s", rate: 10_000, requestsPerSecond: 5)], campaigns: [Self.campaign("a")])
        sim.queued = ["a": ["s": 1_000]]
        sim.run(until: Self.t0 + 10_000)
        #expect(sim.claims.allSatisfy { $0.batches == [1] })
        #expect(sim.claims.count == 50, "5 a second for 10 s: \(sim.claims.count)")
        let gaps = zip(sim.claims.dropFirst(), sim.claims).map { $0.at - $1.at }
        #expect(gaps.allSatisfy { $0 == 200 }, "evenly spaced, each at its wake time: \(Set(gaps).sorted())")
    }

    @Test func requestsInFlightHoldClaimsUntilOneFinishes() {
        var sim = Sim(carriers: [Self.carrier("s", rate: 1_000, maxInFlight: 3)], campaigns: [Self.campaign("a")])
        sim.queued = ["a": ["s": 1_000]]
        sim.requestsFinish = false
        sim.run(until: Self.t0 + 2_000)
        #expect(sim.claims.map(\.count).reduce(0, +) == 3)
        let r = sim.round()
        #expect(r.wake == sim.now + 500, "only a finishing request frees room: look again later")
        sim.states["s"]?.pacer.finished()
        sim.round()
        #expect(sim.claims.map(\.count).reduce(0, +) == 4)
    }

    // MARK: - Minimum batch and remainders

    @Test func aMinimumBatchWaitsForMoreThenMovesTheRemainder() {
        var sim = Sim(carriers: [Self.carrier("g", rate: 1_000, batchMax: 100, batchMin: 10, remainder: "k"),
                                 Self.carrier("k", rate: 1_000)],
                      campaigns: [Self.campaign("a")])
        sim.queued = ["a": ["g": 105]]
        sim.round()
        #expect(sim.claims.filter { $0.carrier == "g" }.map(\.batches) == [[100]])
        // 5 left, more may come: they wait (asked again after a second), at most 30 s.
        sim.run(until: Self.t0 + 29_000)
        #expect(sim.queued["a"]?["g"] == 5)
        #expect(sim.claims.filter { $0.carrier == "g" }.count == 1)
        let readinessChecks = sim.actions.filter { if case .countReady = $0 { true } else { false } }.count
        #expect((25...31).contains(readinessChecks), "asked about once a second, not every round: \(readinessChecks)")
        sim.run(until: Self.t0 + 32_000)
        #expect(sim.actions.contains(.moveRemainder(campaign: "a", from: "g", to: "k", limit: 10,
                                                    reason: "5 left, fewer than carrier g's batch.min 10")))
        #expect(sim.queued["a"]?["g"] == 0)
        #expect(sim.claims.filter { $0.carrier == "k" }.map(\.count).reduce(0, +) == 5, "the remainder carrier sent them")
        #expect(sim.failed == 0)
    }

    @Test func aRemainderWithNothingMoreToComeMovesAtOnceOrFailsWithoutACarrier() {
        var moved = Sim(carriers: [Self.carrier("g", rate: 1_000, batchMax: 100, batchMin: 10, remainder: "k"), Self.carrier("k", rate: 1_000)],
                        campaigns: [Self.campaign("a")])
        moved.queued = ["a": ["g": 7]]
        moved.moreMayCome = false
        moved.round()
        #expect(moved.actions.contains(.moveRemainder(campaign: "a", from: "g", to: "k", limit: 10,
                                                      reason: "7 left, fewer than carrier g's batch.min 10")))
        #expect(!moved.claims.contains { $0.carrier == "g" }, "nothing below the minimum is sent on g")

        // The campaign does not allow the remainder carrier: the remainder fails, never sent.
        var refused = Sim(carriers: [Self.carrier("g", rate: 1_000, batchMax: 100, batchMin: 10, remainder: "k"), Self.carrier("k", rate: 1_000)],
                          campaigns: [Self.campaign("a", allowed: ["g"])])
        refused.queued = ["a": ["g": 7]]
        refused.moreMayCome = false
        refused.round()
        let deadline = Self.t0 + 3_600_000
        #expect(refused.actions == [.countReady(campaign: "a", carrier: "g", limit: 10),
                                    .failRemainder(campaign: "a", carrier: "g", limit: 9, deadline: deadline,
                                                   reason: "7 left, fewer than carrier g's batch.min 10, and no batch.remainder_carrier the campaign allows; not sent")])
        #expect(refused.failed == 7 && refused.claims.isEmpty)
    }

    @Test func batchSizesAreEvenAndNeverAboveTheMaximum() {
        #expect(DispatchPlan.batches(of: 100, batchMax: 100) == [100])
        #expect(DispatchPlan.batches(of: 110, batchMax: 100) == [55, 55])
        #expect(DispatchPlan.batches(of: 201, batchMax: 100) == [67, 67, 67])
        #expect(DispatchPlan.batches(of: 3, batchMax: 1) == [1, 1, 1])
        #expect(DispatchPlan.batches(of: 0, batchMax: 100) == [])
    }

    // MARK: - Windows and deadlines

    @Test func aWindowOpeningWakesTheDispatcherExactlyAtItsStart() throws {
        let nine = try SendWindows(["09:00-10:00"], timeZone: "UTC")
        var sim = Sim(carriers: [Self.carrier("s", rate: 100)], campaigns: [Self.campaign("a", deadline: Self.t0 + 36_000_000, windows: nine)])
        sim.queued = ["a": ["s": 50]]
        let opens = ISOTime.parse("2026-12-02T09:00:00Z")!
        sim.clock.set(opens - 180)
        let r = sim.round()
        #expect(sim.claims.isEmpty, "closed")
        #expect(r.wake == opens)
        sim.clock.set(r.wake)
        sim.round()
        #expect(sim.claims.first?.at == opens)
        // A window an hour away: the dispatcher looks again at its usual pace, and nothing goes meanwhile.
        sim.clock.set(opens + 3_600_000)
        let closed = sim.round()
        #expect(closed.wake == opens + 3_600_000 + 500)
        #expect(sim.claims.count == 1)
        // Claims carry the window's close, so the store takes nothing due after it.
        #expect(sim.actions.first == .claim(.init(campaign: "a", carrier: "s", limit: 10, deadline: Self.t0 + 36_000_000,
                                                  until: opens + 3_600_000, batchMax: 1)))
    }

    @Test func nothingIsClaimedAtOrAfterTheDeadline() {
        let deadline = Self.t0 + 1_000
        var sim = Sim(carriers: [Self.carrier("s", rate: 10)], campaigns: [Self.campaign("a", deadline: deadline)])
        sim.queued = ["a": ["s": 1_000]]
        sim.run(until: deadline + 5_000)
        #expect(!sim.claims.isEmpty)
        #expect(sim.claims.allSatisfy { $0.at < deadline })
        #expect(sim.claims.last?.at == deadline - 100, "the last token before it is used")
        // Exactly at the deadline, with tokens in the bucket: nothing.
        var at = Sim(carriers: [Self.carrier("s", rate: 10)], campaigns: [Self.campaign("a", deadline: Self.t0)])
        at.queued = ["a": ["s": 10]]
        at.round()
        #expect(at.claims.isEmpty)
    }

    // MARK: - Health

    @Test func aPausedCarrierGetsNothingUntilResumed() {
        var sim = Sim(carriers: [Self.carrier("s", rate: 100)], campaigns: [Self.campaign("a")], pauseAfter: 2)
        sim.queued = ["a": ["s": 100]]
        _ = sim.states["s"]?.identical.permanent("412 No route found")
        _ = sim.states["s"]?.identical.permanent("412 No route found")
        let r = sim.round()
        #expect(sim.claims.isEmpty && sim.actions.isEmpty)
        #expect(r.wake == Self.t0 + 500, "only the operator resumes it (and wakes the dispatcher)")
        sim.states["s"]?.identical.resume()
        sim.round(workArrived: true)
        #expect(sim.claims.map(\.count) == [10])
    }

    @Test func aRetryAfterPauseWakesWhenItEnds() {
        var sim = Sim(carriers: [Self.carrier("s", rate: 100)], campaigns: [Self.campaign("a")])
        sim.queued = ["a": ["s": 100]]
        sim.states["s"]?.pacer.throttled(retryAfterSeconds: 0.3, now: Self.t0)
        let r = sim.round()
        #expect(sim.claims.isEmpty)
        #expect(r.wake == Self.t0 + 300)
        sim.clock.set(r.wake)
        sim.round()
        #expect(!sim.claims.isEmpty)
    }

    @Test func anOpenBreakerGetsNothingAndWakesWhenItMayProbe() {
        var sim = Sim(carriers: [Self.carrier("k", rate: 1_000, batchMax: 100)], campaigns: [Self.campaign("a")])
        sim.queued = ["a": ["k": 1_000]]
        sim.requestsFinish = false
        // Opened 4.8 s ago with a 5 s cooldown: it may probe in 200 ms.
        sim.states["k"]?.breaker.trip(now: Self.t0 - 4_800)
        let r = sim.round()
        #expect(sim.claims.isEmpty)
        #expect(r.wake == Self.t0 + 200)
        sim.clock.set(r.wake)
        sim.round()
        #expect(sim.claims.map(\.batches) == [[100]], "one probe request")
        sim.run(until: Self.t0 + 3_000)
        #expect(sim.claims.count == 1, "nothing more while the probe is out")
    }

    // MARK: - Sharing

    @Test func campaignsShareACarrierByWeightAndPriority() {
        var sim = Sim(carriers: [Self.carrier("s", rate: 100)],
                      campaigns: [Self.campaign("heavy", weight: 3), Self.campaign("light", weight: 1)])
        sim.queued = ["heavy": ["s": 100_000], "light": ["s": 100_000]]
        sim.run(until: Self.t0 + 20_000)
        let heavy = sim.claims.filter { $0.campaign == "heavy" }.map(\.count).reduce(0, +)
        let light = sim.claims.filter { $0.campaign == "light" }.map(\.count).reduce(0, +)
        #expect((2_000...2_010).contains(heavy + light), "100/s for 20 s: \(heavy + light)")
        #expect(abs(Double(heavy) / Double(heavy + light) - 0.75) < 0.01, "heavy \(heavy), light \(light)")

        var urgent = Sim(carriers: [Self.carrier("s", rate: 100)], campaigns: [Self.campaign("bulk"), Self.campaign("otp", urgent: true)])
        urgent.queued = ["bulk": ["s": 100_000], "otp": ["s": 100_000]]
        urgent.run(until: Self.t0 + 20_000)
        let otp = urgent.claims.filter { $0.campaign == "otp" }.map(\.count).reduce(0, +)
        let bulk = urgent.claims.filter { $0.campaign == "bulk" }.map(\.count).reduce(0, +)
        #expect(abs(Double(otp) / Double(otp + bulk) - 0.9) < 0.01, "urgent \(otp), bulk \(bulk)")
        #expect(bulk > 150, "bulk never starves")
    }

    @Test func whatOneCampaignCannotUseGoesToTheOthers() {
        var sim = Sim(carriers: [Self.carrier("s", rate: 100)], campaigns: [Self.campaign("a"), Self.campaign("b")])
        sim.queued = ["a": ["s": 2], "b": ["s": 100]]
        sim.round()
        #expect(sim.claims.map(\.count).reduce(0, +) == 10, "the grant of 10 is used in full")
        #expect(sim.claims.filter { $0.campaign == "a" }.map(\.count) == [2])
    }

    @Test func aCampaignsMaxRateHoldsAcrossCarriers() {
        var sim = Sim(carriers: [Self.carrier("s", rate: 1_000), Self.carrier("t", rate: 1_000)],
                      campaigns: [Self.campaign("a", maxRate: 20)])
        sim.queued = ["a": ["s": 10_000, "t": 10_000]]
        sim.run(until: Self.t0 + 10_000)
        let sent = sim.claims.map(\.count).reduce(0, +)
        #expect((200...202).contains(sent), "20/s over both carriers for 10 s: \(sent)")
    }

    @Test func theGlobalLimitIsSharedAcrossCarriers() {
        var sim = Sim(carriers: [Self.carrier("s", rate: 1_000), Self.carrier("t", rate: 1_000)],
                      campaigns: [Self.campaign("a"), Self.campaign("b")], global: 100)
        sim.queued = ["a": ["s": 100_000], "b": ["t": 100_000]]
        sim.run(until: Self.t0 + 10_000)
        let s = sim.claims.filter { $0.carrier == "s" }.map(\.count).reduce(0, +)
        let t = sim.claims.filter { $0.carrier == "t" }.map(\.count).reduce(0, +)
        #expect((1_000...1_010).contains(s + t), "100/s over both carriers for 10 s: \(s + t)")
        #expect(s > 300 && t > 300, "both carriers send: s \(s), t \(t)")
    }

    @Test func aCarrierLeavesTheGlobalTokensItCannotUseToTheNextInTheSameRound() {
        var sim = Sim(carriers: [Self.carrier("s", rate: 1_000), Self.carrier("t", rate: 1_000)],
                      campaigns: [Self.campaign("a"), Self.campaign("b")], global: 100)
        sim.queued = ["a": ["s": 3], "b": ["t": 100]]
        sim.round()
        #expect(sim.claims.map(\.count) == [3, 7], "s used 3 of the 10 global tokens, t the other 7")
    }

    // MARK: - Hand-off room

    @Test func theHandoffRoomLimitsClaimsUntilThePasserOnCatchesUp() {
        var sim = Sim(carriers: [Self.carrier("k", rate: 1_000)], campaigns: [Self.campaign("a")], handoffProbe: 30)
        sim.queued = ["a": ["k": 1_000]]
        sim.run(until: Self.t0 + 2_000)
        #expect(sim.claims.map(\.count).reduce(0, +) == 30, "the probe window: 30 outstanding at most")
        #expect(sim.states["k"]?.handoffHeld == true)
        // The gateway passes five on: five more may go.
        let now = sim.now
        for id in Int64(1)...5 { _ = sim.states["k"]?.handoff?.passedOn(id, at: now) }
        sim.round()
        #expect(sim.claims.map(\.count).reduce(0, +) == 35)
    }
}
