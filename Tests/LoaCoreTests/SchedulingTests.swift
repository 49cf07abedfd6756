import Foundation
import Testing
@testable import LoaCore

@Suite struct SendWindowsTests {
    /// Local time in Ho Chi Minh City (UTC+7, no DST) as UnixMillis.
    func vn(_ s: String) -> UnixMillis { ISOTime.parse(s + "+07:00")! }

    @Test func windowEdges() throws {
        let w = SendWindows.standard
        #expect(w.isOpen(at: vn("2026-11-24T07:00:00")))
        #expect(w.isOpen(at: vn("2026-11-24T21:59:59")))
        #expect(!w.isOpen(at: vn("2026-11-24T22:00:00")))
        #expect(!w.isOpen(at: vn("2026-11-24T06:59:59")))
        #expect(w.nextOpen(after: vn("2026-11-24T21:59:59")) == vn("2026-11-24T21:59:59"))
        #expect(w.nextOpen(after: vn("2026-11-24T22:00:00")) == vn("2026-11-25T07:00:00"))
        #expect(w.nextOpen(after: vn("2026-11-25T03:00:00")) == vn("2026-11-25T07:00:00"))
        #expect(w.closes(after: vn("2026-11-24T21:00:00")) == vn("2026-11-24T22:00:00"))
        #expect(w.closes(after: vn("2026-11-24T23:00:00")) == nil)
    }

    @Test func severalWindowsWrappingAndZones() throws {
        let split = try SendWindows(["07:00-11:30", "13:30-21:00"], timeZone: "Asia/Ho_Chi_Minh")
        #expect(!split.isOpen(at: vn("2026-11-24T12:00:00")))
        #expect(split.nextOpen(after: vn("2026-11-24T12:00:00")) == vn("2026-11-24T13:30:00"))
        let night = try SendWindows(["22:00-06:00"], timeZone: "Asia/Ho_Chi_Minh")
        #expect(night.isOpen(at: vn("2026-11-24T02:00:00")) && night.isOpen(at: vn("2026-11-24T23:00:00")))
        #expect(!night.isOpen(at: vn("2026-11-24T12:00:00")))
        #expect(night.closes(after: vn("2026-11-24T23:00:00")) == vn("2026-11-25T06:00:00"))
        // The same UTC instant is inside the window in Hanoi and outside it in Paris.
        let paris = try SendWindows(["07:00-22:00"], timeZone: "Europe/Paris")
        let t = ISOTime.parse("2026-11-24T02:00:00Z")!  // 09:00 in Vietnam, 03:00 in Paris
        #expect(SendWindows.standard.isOpen(at: t) && !paris.isOpen(at: t))
        #expect(paris.nextOpen(after: t) == ISOTime.parse("2026-11-24T06:00:00Z"))
        // Seconds precision.
        let s = try SendWindows(["07:00:30-07:00:45"], timeZone: "Asia/Ho_Chi_Minh")
        #expect(!s.isOpen(at: vn("2026-11-24T07:00:29")) && s.isOpen(at: vn("2026-11-24T07:00:30")) && !s.isOpen(at: vn("2026-11-24T07:00:45")))
    }

    @Test func badWindows() {
        #expect(throws: SendWindows.Invalid.self) { try SendWindows(["7-22"], timeZone: "Asia/Ho_Chi_Minh") }
        #expect(throws: SendWindows.Invalid.self) { try SendWindows(["07:00-22:00"], timeZone: "Mars/Olympus") }
        #expect(throws: SendWindows.Invalid.self) { try SendWindows(["25:00-26:00"], timeZone: "UTC") }
        #expect(throws: SendWindows.Invalid.self) { try SendWindows([], timeZone: "UTC") }
    }

    @Test func openSecondsBeforeADeadline() throws {
        // From 21:00 today to 09:00 tomorrow: one hour tonight, two tomorrow morning.
        let w = SendWindows.standard
        #expect(w.openSeconds(from: vn("2026-11-24T21:00:00"), to: vn("2026-11-25T09:00:00")) == 3 * 3600)
    }

    /// A deadline at Int64's edge (a stored campaign's `.max`) once overflowed the walk's "a day later" and trapped
    /// the daemon in `GET /api/v1/campaigns/{id}`: the walks stop at year 9999.
    @Test func deadlinesAtTheEdgeOfTimeDoNotTrap() throws {
        let w = SendWindows.standard
        let now = vn("2026-11-24T21:00:00")
        let years = w.openSeconds(from: now, to: .max)
        #expect(years > 7_900 * 365 * 15 * 3600 && years < 8_000 * 366 * 15 * 3600)
        #expect(w.openSeconds(from: .max - 1, to: .max) == 0)
        #expect(w.openSeconds(from: .min, to: now) > 0)
        #expect(w.advance(from: now, openSeconds: 3600, limit: .max) == vn("2026-11-24T22:00:00"))
        #expect(w.advance(from: .max - 10, openSeconds: 3600, limit: .max) == nil)
        #expect(w.advance(from: now, openSeconds: 1e300, limit: .max) == nil)
    }

    /// Open seconds counted minute by minute with `isOpen` alone: the reference for spans whose edges, windows and
    /// the zones' changes of offset all fall on whole minutes.
    func openMinutes(_ w: SendWindows, from: UnixMillis, to: UnixMillis) -> Double {
        var open = 0
        var t = from
        while t < to {
            if w.isOpen(at: t) { open += 1 }
            t += 60_000
        }
        return Double(open * 60)
    }

    @Test func openSecondsAndAdvanceAgreeWithMinuteByMinuteAcrossDaylightSaving() throws {
        let sets = [["07:00-22:00"], ["07:00-11:30", "13:30-21:00"], ["22:00-06:00"], ["01:30-03:30"], ["00:00-24:00"]]
        // Hanoi has no daylight saving; Paris and New York change by an hour in March and in October/November,
        // Lord Howe Island by half an hour.
        let zones = ["Asia/Ho_Chi_Minh", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"]
        let starts = ["2026-03-20T05:17:00Z", "2026-10-20T23:59:00Z", "2026-03-28T10:00:00Z", "2026-04-01T13:41:00Z"]
        var generator = SplitMix(seed: 7)
        for zone in zones {
            for spec in sets {
                let w = try SendWindows(spec, timeZone: zone)
                for start in starts {
                    let from = ISOTime.parse(start)!
                    let to = from + Int64(10 * 1440 + generator.next() % (10 * 1440)) * 60_000  // 10 to 20 days: most cross a change of offset
                    let expected = openMinutes(w, from: from, to: to)
                    if let firstOpen = stride(from: from, to: to, by: 60_000).first(where: { w.isOpen(at: $0) }) {
                        #expect(w.nextOpen(after: from) == firstOpen, "\(zone) \(spec) \(start)")
                    }
                    // Where a window is open, it closes at the first closed minute (windows of one set do not
                    // overlap; 00:00-24:00 never closes).
                    if spec != ["00:00-24:00"] {
                        for m in stride(from: from, to: to, by: 97 * 60_000) where w.isOpen(at: m) {
                            let firstClosed = stride(from: m, to: m + 2 * 86_400_000, by: 60_000).first { !w.isOpen(at: $0) }
                            #expect(w.closes(after: m) == firstClosed, "\(zone) \(spec) open at \(m)")
                        }
                    }
                    #expect(w.openSeconds(from: from, to: to) == expected, "\(zone) \(spec) \(start) + \((to - from) / 60_000) min")
                    // Spending exactly that much open time from `from` ends no later than `to`, having spent it.
                    let eta = try #require(w.advance(from: from, openSeconds: expected, limit: to + 1), "\(zone) \(spec) \(start)")
                    #expect(eta <= to && w.openSeconds(from: from, to: eta) == expected, "\(zone) \(spec) \(start): eta \(eta), to \(to)")
                    if w.isOpen(at: to - 60_000) { #expect(eta == to, "\(zone) \(spec) \(start): open just before the end") }
                }
            }
        }
    }

    @Test func aDeadlineDecadesAwayCountsEveryDay() throws {
        // 2026-01-01 to 2099-01-01 in Hanoi (UTC+7 all along): 26,663 days of 15 hours.
        let from = vn("2026-01-01T00:00:00"), to = vn("2099-01-01T00:00:00")
        let days = (to - from) / 86_400_000
        #expect(days == 26_663)
        let w = SendWindows.standard
        #expect(w.openSeconds(from: from, to: to) == Double(days * 15 * 3600))
        // The last hour of sending falls on the last day's window: 21:00-22:00 on 2098-12-31.
        #expect(w.advance(from: from, openSeconds: Double(days * 15 * 3600), limit: to) == vn("2098-12-31T22:00:00"))
        #expect(w.advance(from: from, openSeconds: Double(days * 15 * 3600 + 1), limit: to) == nil)
        // Across decades of daylight saving the count still matches day by day: Paris, 2026 to 2060.
        let paris = try SendWindows(["07:00-22:00"], timeZone: "Europe/Paris")
        let pFrom = ISOTime.parse("2026-01-01T00:00:00+01:00")!, pTo = ISOTime.parse("2060-01-01T00:00:00+01:00")!
        let pDays = (pTo - pFrom) / 86_400_000  // no window touches 02:00-03:00, so every local day opens 15 hours
        #expect(paris.openSeconds(from: pFrom, to: pTo) == Double(pDays * 15 * 3600))
    }
}

@Suite struct CampaignLifecycleTests {
    @Test func transitions() {
        #expect(CampaignLifecycle.next(.loading, on: .commit) == .scheduled)
        #expect(CampaignLifecycle.next(.scheduled, on: .start) == .running)
        #expect(CampaignLifecycle.next(.running, on: .pause) == .paused)
        #expect(CampaignLifecycle.next(.paused, on: .resume(started: true)) == .running)
        #expect(CampaignLifecycle.next(.paused, on: .resume(started: false)) == .scheduled)
        #expect(CampaignLifecycle.next(.paused, on: .deadline) == .expired)
        #expect(CampaignLifecycle.next(.paused, on: .cancel) == .cancelled)
        #expect(CampaignLifecycle.next(.running, on: .drained) == .completed)
        for final in [CampaignState.completed, .cancelled, .expired] {
            for e in [CampaignEvent.pause, .resume(started: true), .cancel, .start, .deadline] {
                #expect(CampaignLifecycle.next(final, on: e) == nil, "\(final) must ignore \(e)")
            }
        }
        #expect(CampaignLifecycle.next(.loading, on: .pause) == nil)
    }
}

@Suite struct FairShareTests {
    func run(_ claimants: [FairShare.Claimant], rounds: Int, grant: Int) -> [String: Int] {
        var f = FairShare()
        var total: [String: Int] = [:]
        for _ in 0..<rounds {
            let s = f.split(grant, among: claimants)
            #expect(s.values.reduce(0, +) == grant)
            for (k, v) in s { total[k, default: 0] += v }
        }
        return total
    }

    @Test func weightsHoldEvenWithSmallGrants() {
        let t = run([.init(id: "a", weight: 3), .init(id: "b", weight: 1)], rounds: 1000, grant: 3)
        #expect(abs(Double(t["a"]!) / 3000 - 0.75) < 0.01, "\(t)")
        let eq = run([.init(id: "a"), .init(id: "b"), .init(id: "c")], rounds: 999, grant: 1)
        #expect(eq.values.allSatisfy { $0 == 333 }, "\(eq)")
    }

    @Test func urgentFirstWithoutStarvingBulk() {
        let t = run([.init(id: "bulk"), .init(id: "urgent", urgent: true)], rounds: 1000, grant: 10)
        #expect(abs(Double(t["urgent"]!) / 10_000 - 0.9) < 0.01, "\(t)")
        #expect(t["bulk"]! >= 990, "bulk keeps its tenth: \(t)")
    }

    @Test func refundKeepsAnIdleCampaignFromBursting() {
        var f = FairShare()
        let c: [FairShare.Claimant] = [.init(id: "a"), .init(id: "b")]
        for _ in 0..<100 {
            let s = f.split(10, among: c)
            f.refund(s["a"]!, to: "a")  // a has nothing queued
        }
        let next = f.split(10, among: c)
        #expect(next["a"]! <= 6, "a may not take more than its share plus one: \(next)")
    }
}

@Suite struct ContactPolicyTests {
    @Test func capPerRollingWindow() {
        let day: Int64 = 86_400_000
        let one = ContactPolicy(maxPerWindow: 1, windowMillis: day)
        #expect(one.decide(recent: [], now: 10 * day) == .send)
        #expect(one.decide(recent: [10 * day - 1000], now: 10 * day) == .holdUntil(11 * day - 1000))
        #expect(one.decide(recent: [9 * day - 1], now: 10 * day) == .send, "older than 24 h does not count")
        let three = ContactPolicy(maxPerWindow: 3, windowMillis: day)
        #expect(three.decide(recent: [100, 200], now: 1000) == .send)
        #expect(three.decide(recent: [300, 100, 200], now: 1000) == .holdUntil(100 + day))
    }

    @Test func feasibilityWarnsWhenTheWindowIsTooShort() {
        let vn = { (s: String) in ISOTime.parse(s + "+07:00")! }
        let start = vn("2026-11-24T21:00:00"), deadline = vn("2026-11-25T09:00:00")  // 3 h of 07:00-22:00 window
        let ok = Feasibility.estimate(remaining: ["k": 36_000], rates: ["k": 10], maxRate: nil, windows: .standard,
                                      start: start, deadline: deadline, now: start)
        #expect(ok.onTime && ok.neededSeconds == 3600 && ok.eta == vn("2026-11-24T22:00:00"))
        let late = Feasibility.estimate(remaining: ["k": 36_000, "v": 144_000], rates: ["k": 10, "v": 10], maxRate: nil,
                                        windows: .standard, start: start, deadline: deadline, now: start)
        #expect(!late.onTime && late.warning == "needs 4.0 h of sending; 3.0 h of window left before the deadline")
        let capped = Feasibility.estimate(remaining: ["k": 36_000], rates: ["k": 1000], maxRate: 5, windows: .standard,
                                          start: start, deadline: deadline, now: start)
        #expect(capped.neededSeconds == 7200 && capped.eta == vn("2026-11-25T08:00:00"))
    }
}

@Suite struct CarrierHealthTests {
    @Test func adaptiveRateHalvesOncePerSecondAndProbesBack() {
        var r = AdaptiveRate(configured: 100, now: 0)
        #expect(r.rate(now: 0) == 100)
        r.throttled(retryAfterSeconds: nil, now: 0)
        #expect(r.rate(now: 0) == 50)
        r.throttled(retryAfterSeconds: nil, now: 500)
        #expect(r.rate(now: 500) == 50, "answers to requests already in flight count once")
        r.throttled(retryAfterSeconds: nil, now: 1200)
        #expect(r.rate(now: 1200) == 25)
        #expect(r.rate(now: 11_200) == 75)
        #expect(r.rate(now: 60_000) == 100)
        r.throttled(retryAfterSeconds: 3, now: 60_000)
        #expect(r.rate(now: 62_999) == 0, "Retry-After pauses the carrier")
        #expect(r.rate(now: 63_000) == 50)
        for i in 0..<100 { r.throttled(retryAfterSeconds: nil, now: 70_000 + Int64(i) * 1000) }
        #expect(r.current == 5, "never below 5% of the configured rate")
    }

    @Test func breakerOpensProbesAndCloses() {
        var b = CircuitBreaker(threshold: 3, baseCooldownMillis: 1000, maxCooldownMillis: 4000)
        for _ in 0..<2 { b.failed(now: 0) }
        #expect(b.state == .closed && b.allowance(now: 0) == nil)
        b.succeeded()
        for _ in 0..<3 { b.failed(now: 10) }
        #expect(b.state == .open && b.allowance(now: 500) == 0 && b.reopensAt() == 1010)
        #expect(b.allowance(now: 1010) == 1 && b.state == .halfOpen)
        b.started()
        #expect(b.allowance(now: 1011) == 0, "one probe at a time")
        b.failed(now: 1100)
        #expect(b.state == .open && b.reopensAt() == 3100, "a failed probe doubles the cooldown")
        #expect(b.allowance(now: 3100) == 1)
        b.started()
        b.succeeded()
        #expect(b.state == .closed && b.allowance(now: 3200) == nil)
    }
}
