import Testing
@testable import LoaCore

/// The metrics' pure parts: the exposition writer, the per-carrier figures, the `/proc` parsing and the rule
/// that bounds the per-campaign series.
@Suite struct MetricsTests {
    @Test func expositionWritesFamiliesHistogramsAndEscapedLabels() {
        var p = PrometheusText()
        p.family("loa_x_total", .counter, "Help with a \\ and\na line break.")
        p.sample("loa_x_total", ["campaign": "a\"b\\c\nd", "carrier": "k"], Int64(3))
        p.family("loa_g", .gauge, "A gauge.")
        p.sample("loa_g", 0.25)
        p.sample("loa_g", ["k": "v"], Double.infinity)
        var h = LatencyHistogram(bounds: [0.005, 1])
        h.observe(seconds: 0.002)
        h.observe(seconds: 0.5)
        h.observe(seconds: 7)
        p.family("loa_h_seconds", .histogram, "A histogram.")
        p.histogram("loa_h_seconds", ["carrier": "k"], h)
        #expect(p.text == """
            # HELP loa_x_total Help with a \\\\ and\\na line break.
            # TYPE loa_x_total counter
            loa_x_total{campaign="a\\"b\\\\c\\nd",carrier="k"} 3
            # HELP loa_g A gauge.
            # TYPE loa_g gauge
            loa_g 0.25
            loa_g{k="v"} +Inf
            # HELP loa_h_seconds A histogram.
            # TYPE loa_h_seconds histogram
            loa_h_seconds_bucket{carrier="k",le="0.005"} 1
            loa_h_seconds_bucket{carrier="k",le="1"} 2
            loa_h_seconds_bucket{carrier="k",le="+Inf"} 3
            loa_h_seconds_sum{carrier="k"} 7.502
            loa_h_seconds_count{carrier="k"} 3

            """)
        #expect(p.families == ["loa_x_total", "loa_g", "loa_h_seconds"])
    }

    @Test func sendAndReceiptStatsArePerCarrier() {
        var s = SendStats()
        s.request(carrier: "a", seconds: 0.003)
        s.request(carrier: "a", seconds: 400)
        s.retried(carrier: "a")
        s.requeued(carrier: "b", 2)
        #expect(s.requests("a").count == 2 && s.requests("a").buckets.last == 1 && s.requests("b").count == 0)
        #expect(s.requests("a").bounds == LatencyHistogram.requestBounds)
        #expect(s.retries == ["a": 1] && s.requeues == ["b": 2])
        var r = ReceiptStats()
        r.settled(carrier: "a", state: "delivered", millis: 4_000)
        r.settled(carrier: "b", state: "failed", millis: 90_000)
        r.overdue(carrier: "a", 3)
        #expect(r.count == 2 && r.latency("a").sumSeconds == 4 && r.latency("c").count == 0)
        #expect(r.settled == ["a": ["delivered": 1], "b": ["failed": 1]] && r.overdue == ["a": 3])
    }

    /// Fields counted from after the command's last `)`, which may hold spaces and parentheses.
    @Test func procSelfStatIsParsed() throws {
        let stat = "23645 (loa (x) y) S 23642 23642 16862 0 -1 4194304 101 0 0 0 250 50 0 0 20 0 5 0 3043796 3133440 409 18446744073709551615 0"
        let p = try #require(ProcessStats.parse(stat: stat, bootTime: 1_796_160_692, ticks: 100, pageSize: 4096))
        #expect(p.cpuSeconds == 3)
        #expect(p.startTimeSeconds == 1_796_160_692 + 30_437.96)
        #expect(p.virtualBytes == 3_133_440 && p.residentBytes == 409 * 4096)
        #expect(ProcessStats.parse(stat: "1 (x) S 2 3", bootTime: 0, ticks: 100, pageSize: 4096) == nil)
        #expect(ProcessStats.bootTime(procStat: "cpu  1 2 3\nintr 5\nbtime 1796160692\nprocesses 9\n") == 1_796_160_692)
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n"
        #expect(ProcessStats.maxOpenFiles(limits: limits) == 1024)
        #expect(ProcessStats.maxOpenFiles(limits: "Max open files            unlimited            unlimited            files\n") == -1)
    }

    /// Unfinished campaigns always; finished ones for an hour, at most the 20 latest.
    @Test func finishedCampaignsLeaveTheSeries() {
        let hour = CampaignSeries.keepFinishedMillis
        let now: UnixMillis = 100 * hour
        struct C { var id: String; var finished: Bool; var at: UnixMillis }
        var all = [C(id: "running", finished: false, at: 0), C(id: "old", finished: true, at: now - hour - 1), C(id: "recent", finished: true, at: now - hour)]
        #expect(CampaignSeries.kept(all, now: now, finished: \.finished, finishedAt: \.at).map(\.id) == ["running", "recent"])
        all += (0..<30).map { C(id: "f\($0)", finished: true, at: now - 1000 + UnixMillis($0)) }
        let kept = CampaignSeries.kept(all, now: now, finished: \.finished, finishedAt: \.at).map(\.id)
        #expect(kept.count == 1 + CampaignSeries.keepFinishedAtMost)
        #expect(kept.first == "running" && kept.last == "f29" && !kept.contains("recent") && !kept.contains("f9") && kept.contains("f10"))
    }
}
