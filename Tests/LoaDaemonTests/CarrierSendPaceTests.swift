import LoaCore
import Testing
@testable import LoaDaemon

/// The pace where a carrier's requests leave (``CarrierSendPace``), on a manual clock: its bucket in the carrier's
/// unit (a message's parts when the rate counts parts) and its requests on the wire.
@Suite struct CarrierSendPaceTests {
    @Test func aRateInPartsChargesEachMessagesParts() {
        let clock = ManualTimeSource(1_000_000)
        let parts = CarrierSendPace(rate: 10, burst: 4, inFlight: 100, inParts: true, clock: clock)
        #expect(parts.admit(cost: 3) == nil)
        #expect(parts.admit(cost: 3) == 200, "one part left: two more come in 200 ms")
        clock.advance(byMillis: 200)
        #expect(parts.admit(cost: 3) == nil)
        // A message longer than the burst goes when the bucket is full; its other parts are a debt.
        clock.advance(byMillis: 400)
        #expect(parts.admit(cost: 6) == nil)
        #expect(parts.admit(cost: 1) == 300)
        let messages = CarrierSendPace(rate: 10, burst: 4, inFlight: 100, inParts: false, clock: clock)
        #expect((0..<4).map { _ in messages.admit(cost: 3) } == [nil, nil, nil, nil], "a rate in messages counts each as one")
    }

    @Test func theWireHoldsTheNodesRequestsInFlight() {
        let clock = ManualTimeSource(1_000_000)
        let pace = CarrierSendPace(rate: 1_000, burst: 100, inFlight: 2, inParts: false, clock: clock)
        #expect(pace.admit(cost: 1) == nil)
        #expect(pace.admit(cost: 1) == nil)
        #expect(pace.admit(cost: 1) != nil, "two on the wire")
        pace.done()
        #expect(pace.admit(cost: 1) == nil)
        pace.follow(rate: 1_000, burst: 100, inFlight: 3)
        #expect(pace.admit(cost: 1) == nil)
    }

    @Test func theGlobalCapIsSharedByEveryCarriersPaceAndCountsParts() {
        let clock = ManualTimeSource(1_000_000)
        let global = GlobalSendPace(rate: 40, burst: 4, now: clock.now())
        // Each carrier alone would take 1000 a second, counted in messages for b: the cap counts parts for both.
        let a = CarrierSendPace(rate: 1_000, burst: 100, inFlight: 100, inParts: true, global: global, clock: clock)
        let b = CarrierSendPace(rate: 1_000, burst: 100, inFlight: 100, inParts: false, global: global, clock: clock)
        #expect(a.admit(cost: 2) == nil)
        #expect(b.admit(cost: 2) == nil)
        #expect(a.admit(cost: 2) == 50, "the cap's 4 parts are spent by both carriers: 2 more come in 50 ms")
        #expect(b.admit(cost: 1) == 25)
        clock.advance(byMillis: 50)
        #expect(b.admit(cost: 2) == nil)
        #expect(a.admit(cost: 2) == 50)
        // A refusal by the cap takes nothing from the carrier's own bucket or its wire.
        let tight = CarrierSendPace(rate: 1_000, burst: 2, inFlight: 1, inParts: true, global: global, clock: clock)
        #expect(tight.admit(cost: 2) == 50)
        clock.advance(byMillis: 50)
        #expect(tight.admit(cost: 2) == nil, "its burst and its one slot were still there")
        // Over one second of asking every millisecond, the carriers together get the cap's burst plus its rate.
        clock.advance(byMillis: 1_000)
        var parts = 0
        for _ in 0..<1_000 {
            if a.admit(cost: 2) == nil { parts += 2 }
            if b.admit(cost: 3) == nil { parts += 3 }
            clock.advance(byMillis: 1)
        }
        #expect(parts >= 40 && parts <= 44 + 3, "\(parts) parts in a second for a cap of 40 and a burst of 4")
        // A cluster's share lowers it.
        global.follow(rate: 10, burst: 1, now: clock.now())
        clock.advance(byMillis: 1_000)
        var shared = 0
        for _ in 0..<1_000 {
            if a.admit(cost: 1) == nil { shared += 1 }
            clock.advance(byMillis: 1)
        }
        #expect(shared >= 9 && shared <= 11, "\(shared) parts in a second at a share of 10")
    }
}
