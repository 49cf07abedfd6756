import Foundation
import LoaCarriers
import Testing

/// Issue 20: the console's live delivery log, `GET /api/v1/log/stream` (server-sent events), through the real
/// binary and curl as the client, while simulator campaigns run.
@Suite(.ownThreads, .serialized) struct LiveLogTests {
    /// An SSE client in a subprocess (curl -N), its output in a file.
    final class Client {
        let child: Child
        let out: String

        init(_ loa: LoaDaemonProcess, _ work: WorkDir, name: String, campaign: String?, lastEventID: String? = nil) throws {
            out = work.file("sse-\(name).txt")
            var args = ["-sN", "--noproxy", "*", "-H", "Authorization: Bearer \(loa.token)"]
            if let lastEventID { args += ["-H", "Last-Event-ID: \(lastEventID)"] }
            args.append(loa.base + "/api/v1/log/stream" + (campaign.map { "?campaign=\($0)" } ?? ""))
            child = try Child("/usr/bin/curl", args, log: out)
        }

        var text: String { child.output }
        /// The events as (id, data) in order.
        var events: [(id: Int, data: String)] {
            var list: [(Int, String)] = []
            for block in text.components(separatedBy: "\n\n") {
                let lines = block.split(separator: "\n")
                guard let id = lines.first(where: { $0.hasPrefix("id: ") }).flatMap({ Int($0.dropFirst(4)) }),
                      let data = lines.first(where: { $0.hasPrefix("data: ") }) else { continue }
                list.append((id, String(data.dropFirst(6))))
            }
            return list
        }
        var accepted: Bool { text.hasPrefix(": loa delivery log") }
        var refused: Bool { text.contains("too-many-streams") }
    }

    @Test(.timeLimit(.minutes(4))) func followsCampaignsLiveResumesAndIsBounded() async throws {
        let work = WorkDir("live-log")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "20", "--delivered-rate", "1"], env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("gw", sim, rate: 60))]", defaultCarrier: "gw",
                                       listen: #""stream_limit": 2"#)
        let n = 240
        _ = SimCampaign.write(work, id: "it-live", n: n)
        let spec = try String(contentsOfFile: work.file("campaign/campaign.json"), encoding: .utf8)
        // Other numbers (the frequency cap would hold the same ones for a day).
        work.write("campaign/other.csv", "phone,name,ward\n" + (0..<20).map { "098\(String(format: "%07d", 5_000_000 + $0)),Khách \($0),Xã Cần Giờ\n" }.joined())
        work.write("campaign/other.json", spec.replacingOccurrences(of: "\"id\": \"it-live\"", with: "\"id\": \"it-other\"")
            .replacingOccurrences(of: "\"segment.csv\"", with: "\"other.csv\""))
        try await loa.start()
        // Another campaign first, so the log holds lines the filter must keep out.
        #expect(try loa.cli(["campaign", "submit", work.file("campaign/other.json")]).status == 0)
        try await poll(60, "it-other to complete") { try await loa.campaign("it-other")["state"] as? String == "completed" }

        // Two streams, the limit: all campaigns, live; and it-live only (404 before it exists).
        let unknown = try await loa.api("/api/v1/log/stream?campaign=it-live")
        #expect(unknown.status == 404, "\(unknown.bodyText)")
        let all = try Client(loa, work, name: "all", campaign: nil)
        try await poll(30, "the unfiltered stream to begin") { all.accepted }

        // The filtered client starts just after the log's last line before it-live: it gets every it-live line,
        // whenever it gets to connect.
        let before = try String(contentsOfFile: work.file("data/delivery.log"), encoding: .utf8).split(separator: "\n")
        let lastOther = try #require(before.last.flatMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["seq"] as? Int })
        let submit = try Child(Env.loaBinary, ["campaign", "submit", work.file("campaign/campaign.json"), "--config", loa.configPath],
                               env: loa.env, log: work.file("submit.txt"))
        try await poll(30, "it-live to exist") { (try await loa.api("/api/v1/campaigns/it-live")).status == 200 }
        let first = try Client(loa, work, name: "first", campaign: "it-live", lastEventID: "\(lastOther)")
        try await poll(30, "the filtered stream to begin") { first.accepted }
        // A third is refused while two are open.
        let over = try await loa.api("/api/v1/log/stream")
        #expect(over.status == 503 && over.bodyText.contains("too-many-streams"), "\(over.status) \(over.bodyText)")
        #expect(submit.wait(seconds: 60) == 0, "\(submit.output)")

        // Cut the filtered client mid-campaign and resume after the last id it got.
        try await poll(60, "some of it-live's events") { first.events.count >= 60 }
        first.child.signal(SIGKILL)
        _ = first.child.wait(seconds: 5)
        let cut = first.events
        let last = try #require(cut.last).id
        var resumed: Client?
        try await poll(30, "a slot for the resumed stream") {
            if let r = resumed, r.refused { _ = r.child.wait(seconds: 5); resumed = nil }
            if resumed == nil { resumed = try Client(loa, work, name: "resumed", campaign: "it-live", lastEventID: "\(last)") }
            return resumed!.accepted
        }
        let second = try #require(resumed)
        _ = try await SimCampaign.settle(loa, sim, id: "it-live", n: n)

        // What the log holds for it-live, line by line, is what the two streams gave, each line once, in order.
        let logLines = try String(contentsOfFile: work.file("data/delivery.log"), encoding: .utf8).split(separator: "\n").map(String.init)
        let live = logLines.filter { $0.contains("\"campaign\":\"it-live\"") }
        let liveIDs = live.compactMap { l in (try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any])?["seq"] as? Int }
        let tail = liveIDs.filter { $0 > last }
        try await poll(30, "the resumed stream to reach the log's end") { second.events.map(\.id) == tail }
        let got = cut + second.events
        #expect(got.map(\.id) == liveIDs, "no gaps, no repeats")
        #expect(Set(got.map(\.id)).count == got.count)
        let byID = Dictionary(uniqueKeysWithValues: zip(liveIDs, live))
        #expect(got.allSatisfy { byID[$0.id] == $0.data }, "each event is its log line")
        let receipts = got.filter { $0.data.contains("\"event\":\"receipt\"") && $0.data.contains("\"status\":\"delivered\"") }
        #expect(receipts.count > n / 2, "receipts arrive live: \(receipts.count)")
        #expect(!got.contains { $0.data.contains("it-other") }, "the filter keeps other campaigns out")
        // The unfiltered stream saw it-live's lines too.
        #expect(all.events.contains { $0.data.contains("\"campaign\":\"it-live\"") })

        // At the daemon's stop, the open streams end cleanly (curl exits 0: the chunked body was ended), and the
        // stop does not wait out the 30 s drain for them.
        let stopping = Date()
        #expect(loa.stop() == 0)
        #expect(Date().timeIntervalSince(stopping) < 15, "stop took \(Date().timeIntervalSince(stopping)) s")
        #expect(all.child.wait(seconds: 10) == 0, "\(all.text.suffix(300))")
        #expect(second.child.wait(seconds: 10) == 0)
    }
}
