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
}
