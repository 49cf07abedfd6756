import Testing
@testable import LoaCore

@Suite struct RestrictedRoutingTests {
    func number(_ s: String) -> PhoneNumber { try! PhoneNormalizer.normalize(s).get() }

    @Test func aCampaignsAllowedListKeepsAllowedRoutesAndSendsTheRestToItsFirstCarrier() {
        let r = Router(defaultCarrier: "agg", networks: [.mobifone: "mobi-link", .viettel: "viettel-link"])
        let viettel = number("0961234567"), mobi = number("0901234567"), vina = number("0911234567")
        #expect([viettel, mobi, vina].map(r.route) == ["viettel-link", "mobi-link", "agg"])
        let limited = r.restricted(to: ["agg", "viettel-link"])
        #expect([viettel, mobi, vina].map(limited.route) == ["viettel-link", "agg", "agg"])
        // An empty list is no restriction.
        #expect(r.restricted(to: []).route(mobi) == "mobi-link")
        #expect(limited != r)
    }
}

@Suite struct LatencyHistogramTests {
    @Test func prometheusBucketsAreCumulative() {
        var h = LatencyHistogram(bounds: [1, 60])
        for ms: Int64 in [200, 1_000, 30_000, 90_000] { h.observe(millis: ms) }
        let text = h.prometheus("lat", labels: "carrier=\"k\"")
        #expect(text == """
            lat_bucket{carrier="k",le="1"} 2
            lat_bucket{carrier="k",le="60"} 3
            lat_bucket{carrier="k",le="+Inf"} 4
            lat_sum{carrier="k"} 121.2
            lat_count{carrier="k"} 4

            """)
        #expect(LatencyHistogram(bounds: [5]).prometheus("x").hasPrefix("x_bucket{le=\"5\"} 0\n"))
    }
}
