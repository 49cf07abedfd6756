import Foundation
import Testing
@testable import LoaCore

@Suite struct HandoffWindowTests {
    func window(probe: Int = 100) -> HandoffWindow { HandoffWindow(settings: .init(probeMessages: probe, receiptTimeoutMillis: 600_000), now: 0) }

    @Test func beforeAnyPaceTheProbeWindowHolds() {
        var w = window(probe: 10)
        #expect(w.room(deadline: 30_000, now: 0) == 10)
        w.handedOver(1...7, at: 0)
        #expect(w.room(deadline: 30_000, now: 0) == 3)
        w.withdrawn(7)
        #expect(w.room(deadline: 30_000, now: 0) == 4)
        // Without time left (margins included), not even a probe.
        #expect(w.room(deadline: 2_000, now: 0) == 0)
        #expect(w.pace == nil)
    }

    @Test func paceIsLearnedFromBusyIntervalsOnly() {
        var w = window()
        w.handedOver(1...40, at: 0)
        // The gateway passes one every 200 ms (5/s); the first pass-on after 1 s of latency is not an interval.
        var t: UnixMillis = 1_000
        for id in Int64(1)...20 {
            let r1 = w.passedOn(id, at: t)
            #expect(r1)
            t += 200
        }
        let pace = try! #require(w.pace)
        #expect(abs(pace - 5) < 0.01, "pace \(pace)")
        // A repeat (a final receipt after smsc-accepted) changes nothing.
        let r2 = w.passedOn(3, at: t)
        #expect(!r2)
        #expect(w.outstandingCount == 20)
        // Idle time is not measured: a message handed over after the last pass-on, passed on 10 s later.
        w.handedOver([100], at: t + 5_000)
        let r3 = w.passedOn(100, at: t + 15_000)
        #expect(r3)
        #expect(abs(w.pace! - 5) < 0.01, "idle time changed the pace: \(w.pace!)")
    }

    @Test func roomFollowsPaceAndDeadlineWithMargins() {
        var w = window()
        w.handedOver(1...30, at: 0)
        var t: UnixMillis = 0
        for id in Int64(1)...12 { w.passedOn(id, at: t); t += 200 }  // 5/s
        #expect(abs(w.pace! - 5) < 0.01)
        // 18 outstanding. Deadline 30 s after t: usable 30 × 0.9 − 2 = 25 s → 125 → room 107.
        #expect(w.window(deadline: t + 30_000, now: t) == 125)
        #expect(w.room(deadline: t + 30_000, now: t) == 107)
        // 12 s: 8.8 s → 44 → 26; 2 s: nothing.
        #expect(w.room(deadline: t + 12_000, now: t) == 26)
        #expect(w.room(deadline: t + 2_000, now: t) == 0)
        // A far deadline: ten minutes of the gateway's work at most (and no overflow).
        #expect(w.window(deadline: t + 3_600_000, now: t) == 3_000)
        #expect(w.room(deadline: .max / 2, now: t) == 3_000 - 18)
    }

    @Test func throttlingLowersThePaceOncePerSecond() {
        var w = window()
        w.handedOver(1...20, at: 0)
        var t: UnixMillis = 0
        for id in Int64(1)...12 { w.passedOn(id, at: t); t += 100 }  // 10/s
        #expect(abs(w.pace! - 10) < 0.01)
        w.throttled(at: t)
        w.throttled(at: t + 500)
        #expect(abs(w.pace! - 7) < 0.01)
        w.throttled(at: t + 1_000)
        #expect(abs(w.pace! - 4.9) < 0.01)
    }

    @Test func aSilentGatewayStopsLimitingAndAReceiptResumes() {
        var w = window(probe: 5)
        w.handedOver(1...5, at: 0)
        #expect(w.room(deadline: 100_000, now: 1_000) == 0)
        let r4 = w.advance(to: 59_000)
        #expect(r4 == nil)
        let r5 = w.advance(to: 60_000)
        #expect(r5 == .silenced(outstanding: 5))
        let r6 = w.advance(to: 61_000)
        #expect(r6 == nil, "logged once")
        #expect(w.room(deadline: 100_000, now: 61_000) == nil)
        w.handedOver(6...9, at: 61_000)
        #expect(w.room(deadline: 100_000, now: 61_000) == nil)
        // A receipt proves the gateway reports: limiting again.
        let r7 = w.heardFrom(at: 62_000)
        #expect(r7 == .resumed)
        let r8 = w.heardFrom(at: 62_100)
        #expect(r8 == nil)
        #expect(w.room(deadline: 100_000, now: 62_100) == 1)
    }

    @Test func receiptsKeepItFromGoingSilent() {
        var w = window(probe: 5)
        w.handedOver(1...5, at: 0)
        w.passedOn(1, at: 50_000)
        let r9 = w.advance(to: 100_000)
        #expect(r9 == nil)
        let r10 = w.advance(to: 110_000)
        #expect(r10 == .silenced(outstanding: 4))
        // Nothing outstanding: never silent.
        var idle = window()
        let r11 = idle.advance(to: 1_000_000)
        #expect(r11 == nil)
    }

    @Test func outstandingOlderThanTheReceiptTimeoutDropsOut() {
        var w = HandoffWindow(settings: .init(probeMessages: 10, receiptTimeoutMillis: 30_000), now: 0)
        w.handedOver(1...4, at: 0)
        w.handedOver(5...6, at: 20_000)
        w.heardFrom(at: 29_000)
        _ = w.advance(to: 30_500)
        #expect(w.outstandingCount == 2)
        #expect(w.room(deadline: 1_000_000, now: 30_500) == 8)
    }

    /// Gateways do not pass on in hand-over order (Kannel's bearerbox does not): a message passed on says nothing
    /// of those handed over before it. A receipt is taken as lost only after `lostAfterSeconds` outstanding.
    @Test func lostReceiptsDoNotHoldTheWindowShut() {
        var w = HandoffWindow(settings: .init(probeMessages: 10, receiptTimeoutMillis: 72 * 3_600_000), now: 0)
        w.handedOver(1...5, at: 0)
        w.handedOver(6...7, at: 15_000)
        #expect(w.room(deadline: 10_000_000, now: 15_000) == 3)
        // 7's receipt comes first: 1-5 are still in the gateway's queue, not lost.
        let r = w.passedOn(7, at: 16_000)
        #expect(r)
        #expect(w.outstandingIDs == [1, 2, 3, 4, 5, 6])
        w.heardFrom(at: 1_199_000)
        _ = w.advance(to: 1_199_500)
        #expect(w.outstandingCount == 6)
        // Twenty minutes outstanding: their receipts were lost (the window never holds that much of the gateway's work).
        w.heardFrom(at: 1_200_500)
        _ = w.advance(to: 1_201_000)
        #expect(w.outstandingIDs == [6])
    }

    /// Passed on in any order, the count stays exact: a shuffled queue of 40 leaves exactly what was not reported.
    @Test func outOfOrderPassOnsKeepTheCountExact() {
        var w = window(probe: 100)
        w.handedOver(1...40, at: 0)
        var rng = SystemRandomNumberGenerator()
        let order = Array(Int64(1)...40).shuffled(using: &rng)
        var t: UnixMillis = 1_000
        for id in order.prefix(25) { w.passedOn(id, at: t); t += 200 }
        #expect(w.outstandingIDs == order.suffix(15).sorted())
    }

    /// After a restart, what the store says the gateway holds counts, but not against the probe: the probe's new
    /// messages teach the pace.
    @Test func restoredMessagesCountButDoNotUseUpTheProbe() {
        var w = window(probe: 10)
        w.restore((1...50).map { (id: Int64($0), at: UnixMillis(1_000 + $0)) })
        #expect(w.outstandingCount == 50)
        #expect(w.room(deadline: 1_000_000, now: 30_000) == 10)
        w.handedOver(100...109, at: 30_000)
        #expect(w.room(deadline: 1_000_000, now: 30_000) == 0)
        var t: UnixMillis = 31_000
        for id in Int64(100)...109 { w.passedOn(id, at: t); t += 200 }
        // The restored ones still count (their receipts may come), and the new ones taught the pace.
        #expect(w.outstandingCount == 50)
        #expect(abs(w.pace! - 5) < 0.01)
        // Window: 5/s × the ten-minute horizon (the deadline is further), less the 50 restored.
        let room = w.room(deadline: 1_000_000, now: t) ?? -1
        #expect(abs(room - (5 * 600 - 50)) <= 2)
        // A restored message's own receipt takes it out like any other.
        var v = window(probe: 10)
        v.restore([(id: 1, at: 0), (id: 2, at: 5)])
        #expect(v.passedOn(2, at: 100) && v.outstandingIDs == [1])
    }

    @Test func aReceiptWithoutOurIdTakesTheOldest() {
        var w = window()
        w.handedOver([5], at: 10)
        w.handedOver([3], at: 20)
        let r12 = w.passedOn(nil, at: 30)
        #expect(r12)
        #expect(w.outstandingIDs == [3])
    }

    /// Loa at 50/s into a gateway that queues and passes on 5/s, deadline 30 s: nothing passes on after the
    /// deadline, and the gateway is kept busy (about pace × deadline handed over).
    /// Receipt latency 50 ms, or with `jitter` 50–450 ms (receipts then arrive out of order and in bursts).
    @Test(arguments: [false, true]) func aQueueingGatewayPassesEverythingOnBeforeTheDeadline(jitter: Bool) {
        var w = window(probe: 100)
        var seed: UInt64 = 42
        func latency() -> UnixMillis {
            guard jitter else { return 50 }
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return 50 + UnixMillis((seed >> 33) % 41) * 10
        }
        var receiptAt: [UnixMillis: [Int64]] = [:]
        let deadline: UnixMillis = 30_000
        var queue: [(id: Int64, at: UnixMillis)] = []
        var nextPass: UnixMillis = 0
        var passedAt: [Int64: UnixMillis] = [:]
        var handed = 0
        var next: Int64 = 1
        var t: UnixMillis = 0
        while t < 60_000 {
            // The gateway: one message every 200 ms, receipts 50 ms later.
            while let head = queue.first, max(head.at, nextPass) <= t {
                let at = max(head.at, nextPass)
                passedAt[head.id] = at
                receiptAt[at + latency(), default: []].append(head.id)
                nextPass = at + 200
                queue.removeFirst()
            }
            for id in receiptAt.removeValue(forKey: t) ?? [] { w.heardFrom(at: t); w.passedOn(id, at: t) }
            // Loa: 50/s, one every 20 ms, while the campaign runs and the window has room.
            if t < deadline && t % 20 == 0 {
                _ = w.advance(to: t)
                if (w.room(deadline: deadline, now: t) ?? 1) > 0 {
                    w.handedOver([next], at: t)
                    queue.append((next, t))
                    next += 1
                    handed += 1
                }
            }
            t += 10
        }
        let late = passedAt.values.filter { $0 > deadline }.count
        #expect(late == 0, "passed on after the deadline: \(late) of \(handed)")
        #expect(handed >= 120 && handed <= 150, "handed over \(handed)")
        #expect(passedAt.count == handed)
    }

    /// One message whose receipt never comes holds the lazy skip at the head of the hand-over order: the order must
    /// not keep every message handed over behind it (it kept 1,000,000 entries in `rss.sh 1000000`).
    @Test func aLostReceiptDoesNotKeepEveryLaterHandOver() {
        var w = window(probe: 100)
        w.handedOver([0], at: 0)
        var passed = 0
        for i in 1...200_000 {
            w.handedOver([Int64(i)], at: Int64(i))
            if w.passedOn(Int64(i), at: Int64(i) + 1) { passed += 1 }
        }
        #expect(passed == 200_000 && w.outstandingCount == 1)
        #expect(w.orderEntries <= 8192, "entries kept: \(w.orderEntries)")
        // The lost one is still the oldest: it counts as passed on first when an id-less receipt comes.
        let lost = w.passedOn(nil, at: 300_000)
        #expect(lost && w.outstandingCount == 0)
    }

    /// Receipts lost at a high rate (`rss.sh`'s simulator dropped 90% of them) keep every message outstanding for
    /// twenty minutes: a million of them must cost their 64-id chunks, not an entry each (the dictionary and the
    /// hand-over order held 1,000,000 entries, 32 MB). After twenty minutes they are all taken as lost.
    @Test func aMillionLostReceiptsCostChunksNotMessages() {
        var w = window(probe: 100)
        for claim in 0..<2_000 {
            w.handedOver(Int64(claim * 500 + 1)...Int64(claim * 500 + 500), at: UnixMillis(claim * 250))
        }
        #expect(w.outstandingCount == 1_000_000)
        #expect(w.orderEntries <= 32_000, "entries kept: \(w.orderEntries)")
        w.heardFrom(at: 1_700_000)
        _ = w.advance(to: 1_700_000)
        #expect(w.outstandingCount == 0)
    }
}
