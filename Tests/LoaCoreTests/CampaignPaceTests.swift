import LoaCore
import Testing

/// ``CampaignPace``: the rate is what left over the last minute; a stall reads 0 and keeps when it last moved.
@Suite struct CampaignPaceTests {
    @Test func theWorkedExample() {
        var p = CampaignPace()
        let t0: UnixMillis = 1_000_000
        p.record(remaining: 1_000, at: t0)
        #expect(p.rate(at: t0) == nil, "one sample: not measured")
        p.record(remaining: 700, at: t0 + 30_000)
        p.record(remaining: 400, at: t0 + 60_000)
        #expect(p.rate(at: t0 + 60_000) == 10)
        #expect(p.lastMovedAt == t0 + 60_000)
        for s in stride(from: 62_000, through: 120_000, by: 2_000) { p.record(remaining: 400, at: t0 + Int64(s)) }
        #expect(p.rate(at: t0 + 120_000) == 0, "nothing left for a minute")
        #expect(p.lastMovedAt == t0 + 60_000)
        #expect(p.samples.count <= 32, "bounded: \(p.samples.count)")
    }

    @Test func underTenSecondsIsNotMeasured() {
        var p = CampaignPace()
        p.record(remaining: 100, at: 0)
        p.record(remaining: 50, at: 9_000)
        #expect(p.rate(at: 9_000) == nil)
        p.record(remaining: 0, at: 10_000)
        #expect(p.rate(at: 10_000) == 10)
    }
}
