import Foundation
import LoaCarriers
import LoaCore
import Testing

/// A report that explains (issue 19, item 4): failures grouped by a reason code (ids and numbers out of the
/// gateway's words) and a class, the raw text kept per message; charts with titled axes, ticks, a grid and
/// legends, in the campaign's local time; screenshots in headless Chromium kept as test artefacts.
@Suite(.ownThreads, .serialized) struct ReportTests {
    /// Where the screenshots and the page stay after the run (the work dir goes): `.build/test-artefacts/report`.
    static let artefacts = Env.root + "/.build/test-artefacts/report"

    @Test(.timeLimit(.minutes(5))) func manyFailuresMakeFewReasonGroups() async throws {
        let work = WorkDir("report-reasons")
        // 80% undelivered, each receipt's text naming the gateway's message id and the number, as many gateways do.
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "19", "--delivered-rate", "0.2",
                                                           "--failure-text", "undeliverable: subscriber {to} absent (message {id})"],
                                        env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(try SimCarriers.generic("gw", sim))]", defaultCarrier: "gw")
        let n = 400
        _ = SimCampaign.write(work, id: "it-report", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit: \(submit.output)")
        let states = try await SimCampaign.settle(loa, sim, id: "it-report", n: n)
        let failed = states["failed"] ?? 0
        try #require(failed > 200, "\(states)")

        // The CSV keeps each message's raw text, and gives its code and class.
        let csv = work.file("report.csv")
        let r = try loa.cli(["report", "it-report", "--csv", csv])
        #expect(r.status == 0, "\(r.output)")
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.first?.suffix(2) == ["reason_code", "reason_class"], "\(rows.first ?? [])")
        let failedRows = rows.dropFirst().filter { $0.count == 13 && $0[3] == "failed" }
        #expect(failedRows.count == failed)
        #expect(Set(failedRows.map { $0[4] }).count > 100, "the raw text stays per message")
        #expect(Set(failedRows.map { $0[11] }).count == 1 && Set(failedRows.map { $0[12] }) == ["undelivered"], "\(Set(failedRows.map { $0[11] }))")

        // The report's data: few groups, whose counts sum to the failures.
        let data = try JSONSerialization.jsonObject(with: Data(try await loa.api("/api/v1/campaigns/it-report/report").body)) as? [String: Any] ?? [:]
        let groups = data["reason_groups"] as? [[String: Any]] ?? []
        let failureGroups = groups.filter { $0["class"] as? String == "undelivered" }
        #expect(failureGroups.count == 1, "\(groups)")
        #expect(failureGroups.map { $0["count"] as? Int ?? 0 }.reduce(0, +) == failed, "\(groups)")
        #expect(groups.count <= 3, "\(groups)")

        // The page: the reasons chart says how many groups; axes have titles; legends; the campaign's zone.
        let html = work.file("report.html")
        let h = try loa.cli(["report", "it-report", "--html", html])
        #expect(h.status == 0, "\(h.output)")
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(page.contains("Failure and rejection reasons: \(failed + 1) messages in 2 groups"), "\(page.prefix(3000))")
        #expect(page.contains("messages delivered (cumulative)") && page.contains("time (Asia/Ho_Chi_Minh"), "axis titles")
        #expect(page.contains("recipients per ward, by state") && page.contains(">delivered</text>") && page.contains(">failed</text>"), "ward legend")
        #expect(page.contains("times in Asia/Ho_Chi_Minh") && page.contains("+07:00"))
        #expect(page.range(of: #"\(message [^#]"#, options: .regularExpression) == nil, "no raw id-bearing text as a group label")

        // Screenshots in headless Chromium, kept for a look.
        try FileManager.default.createDirectory(atPath: Self.artefacts, withIntermediateDirectories: true)
        let png = work.file("report.png")
        let shot = try run("/bin/bash", [Env.root + "/Deploy/report-screenshot.sh", html, png], timeout: 120)
        #expect(shot.status == 0, "\(shot.output)")
        let size = (try? FileManager.default.attributesOfItem(atPath: png)[.size] as? Int) ?? 0
        #expect(size > 20_000, "a screenshot with charts: \(size) bytes")
        for (from, to) in [(png, "report.png"), (html, "report.html")] {
            try? FileManager.default.removeItem(atPath: Self.artefacts + "/" + to)
            try? FileManager.default.copyItem(atPath: from, toPath: Self.artefacts + "/" + to)
        }
    }
}
