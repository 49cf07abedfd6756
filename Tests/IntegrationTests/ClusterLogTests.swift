import Foundation
import LoaCarriers
import LoaCore
import Testing

/// Issue 21, item 5: the whole cluster's delivery log, followed in event order from any node. Three (or two) real
/// daemons on the suite's PostgreSQL, one schema per test, one gateway simulator: `loa tail --cluster` on one node
/// prints every node's lines, each once, in an order that keeps each node's seq order and each message's causal
/// order, and the same lines as the union of the nodes' own files; an SSE client cut mid-campaign resumes with
/// `Last-Event-ID` without a repeat or a gap, and is told when retention deleted lines past its place; `-n N`
/// starts with the last lines.
@Suite(.ownThreads, .serialized, .enabled(if: postgresWanted)) struct ClusterLogTests {
    @Test(.timeLimit(.minutes(4))) func clusterTailOnOneNodeShowsEveryNodesLinesOnceInOrder() async throws {
        let sim = try GatewaySimProcess(work: WorkDir("clog-sim"), args: ["--seed", "21", "--delivered-rate", "1", "--latency-ms", "2"],
                                        env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let nodes = try await startNodes(3, label: "tail", sim: sim)
        defer { for n in nodes { _ = n.stop() } }
        let n = 900
        _ = SimCampaign.write(nodes[0].work, id: "it-clog", n: n)
        // A follower on the second node from before the campaign, live through it.
        let follow = try Child(Env.loaBinary, ["tail", "--cluster", "--follow", "--json", "--config", nodes[1].configPath], env: nodes[1].env,
                               log: nodes[1].work.file("follow.txt"))
        defer { follow.signal(SIGKILL); _ = follow.wait(seconds: 5) }
        let submit = try nodes[0].cli(["campaign", "submit", nodes[0].work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit: \(submit.output)")
        let states = try await SimCampaign.settle(nodes[0], sim, id: "it-clog", n: n)
        #expect(states["delivered"] == n, "\(states)")
        let union = nodes.flatMap(Self.fileLines)
        let writers = Set(union.compactMap { Self.object($0)["node"] as? String })
        #expect(writers == ["n1", "n2", "n3"], "every node sent and logged: \(writers)")

        // The whole log, once, from the third node.
        let tail = try nodes[2].cli(["tail", "--cluster", "--json"])
        #expect(tail.status == 0, "\(tail.output.suffix(500))")
        let printed = tail.output.split(separator: "\n").map(String.init)
        Self.expectSameEventsInOrder(printed, union, "tail --cluster")
        try await poll(30, "the follower to print every line") { follow.output.split(separator: "\n").count >= union.count }
        Self.expectSameEventsInOrder(follow.output.split(separator: "\n").map(String.init), union, "tail --cluster --follow")
        // A campaign filter keeps only its lines; the SQLite-only flag mix is refused.
        let filtered = try nodes[1].cli(["tail", "--cluster", "--json", "--campaign", "it-clog", "--event", "accepted"])
        #expect(filtered.output.split(separator: "\n").count == n, "\(filtered.output.suffix(300))")
        // -n: the last lines of the cluster's log, as `loa tail -n` on one node.
        let lastFive = try nodes[1].cli(["tail", "--cluster", "--json", "-n", "5"])
        #expect(lastFive.status == 0 && lastFive.output.split(separator: "\n").map(String.init) == Array(printed.suffix(5)), "\(lastFive.output)")
    }

    @Test(.timeLimit(.minutes(4))) func anSSEClientResumesTheClusterStreamWithoutRepeatOrGap() async throws {
        let sim = try GatewaySimProcess(work: WorkDir("clog-sse-sim"), args: ["--seed", "22", "--delivered-rate", "1", "--latency-ms", "2"],
                                        env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let nodes = try await startNodes(2, label: "sse", sim: sim, rate: 100)
        defer { for n in nodes { _ = n.stop() } }
        let bad = try await nodes[1].api("/api/v1/log/stream?scope=everything")
        #expect(bad.status == 400 && bad.bodyText.contains("scope"), "\(bad.bodyText)")
        let n = 500
        _ = SimCampaign.write(nodes[0].work, id: "it-clog-sse", n: n)
        let first = try SSEClient(nodes[1], name: "first", query: "scope=cluster&last_event_id=0")
        try await poll(30, "the stream to begin") { first.text.hasPrefix(": loa cluster log") }
        #expect(try nodes[0].cli(["campaign", "submit", nodes[0].work.file("campaign/campaign.json")]).status == 0)
        try await poll(60, "some events") { first.events.count >= 300 }
        first.child.signal(SIGKILL)
        _ = first.child.wait(seconds: 5)
        let cut = first.events
        let last = try #require(cut.last).id
        let second = try SSEClient(nodes[1], name: "second", query: "scope=cluster", lastEventID: "\(last)")
        _ = try await SimCampaign.settle(nodes[0], sim, id: "it-clog-sse", n: n)
        let union = nodes.flatMap(Self.fileLines)
        try await poll(30, "the resumed stream to give every line") { cut.count + second.events.count >= union.count }
        let got = cut + second.events
        #expect(zip(got, got.dropFirst()).allSatisfy { $0.id < $1.id }, "ids rise: no repeat, in order")
        Self.expectSameEventsInOrder(got.map(\.data), union, "SSE cut and resumed")
        #expect(second.events.first.map { $0.id > last } ?? false)
        // A campaign filter on the cluster's stream, from the start.
        let filtered = try SSEClient(nodes[0], name: "filtered", query: "scope=cluster&campaign=it-clog-sse&last_event_id=0")
        let ids = Set(got.map(\.id))
        try await poll(30, "the filtered stream") { filtered.events.count >= union.count }
        #expect(filtered.events.allSatisfy { ids.contains($0.id) && $0.data.contains("\"campaign\":\"it-clog-sse\"") })
        filtered.child.signal(SIGKILL)
        second.child.signal(SIGKILL)
    }

    @Test(.timeLimit(.minutes(4))) func aClientResumingPastDeletedLinesIsToldAndTailCanStartWithTheLastLines() async throws {
        let sim = try GatewaySimProcess(work: WorkDir("clog-pruned-sim"), args: ["--seed", "23", "--delivered-rate", "1", "--latency-ms", "2"],
                                        env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let schema = "it_clog_pruned_\(UInt32.random(in: 0...UInt32.max))"
        let nodes = try await startNodes(1, label: "pruned", sim: sim, schema: schema)
        defer { for n in nodes { _ = n.stop() } }
        let loa = nodes[0]
        _ = SimCampaign.write(loa.work, id: "it-clog-pruned", n: 40)
        #expect(try loa.cli(["campaign", "submit", loa.work.file("campaign/campaign.json")]).status == 0)
        _ = try await SimCampaign.settle(loa, sim, id: "it-clog-pruned", n: 40)
        let file = Self.fileLines(loa)

        // -n: the last lines, as `loa tail -n` on one node; with a filter of the CLI's own, the last matching ones.
        let all = try loa.cli(["tail", "--cluster", "--json"]).output.split(separator: "\n").map(String.init)
        #expect(all.count == file.count, "\(all.count) lines, the file \(file.count)")
        let lastFive = try loa.cli(["tail", "--cluster", "--json", "-n", "5"])
        #expect(lastFive.status == 0 && lastFive.output.split(separator: "\n").map(String.init) == Array(all.suffix(5)), "\(lastFive.output)")
        let accepted = all.filter { Self.object($0)["event"] as? String == "accepted" }
        let lastAccepted = try loa.cli(["tail", "--cluster", "--json", "-n", "3", "--event", "accepted"])
        #expect(lastAccepted.output.split(separator: "\n").map(String.init) == Array(accepted.suffix(3)), "\(lastAccepted.output)")
        // The API's own: `lines=N` without a place.
        let api = try await loa.api("/api/v1/log/stream?scope=cluster&follow=false&lines=4")
        let apiIDs = ClusterTailEvents.ids(api.bodyText)
        #expect(apiIDs.count == 4, "\(api.bodyText.suffix(300))")
        // A `follow=false` answer ends with the place reached, which the CLI resumes after: one that gave nothing
        // (`-n 0`, from now) must not send the next request back to the start of the log.
        #expect(ClusterTailEvents.place(api.bodyText) == apiIDs.last, "\(api.bodyText.suffix(100))")
        let none = try await loa.api("/api/v1/log/stream?scope=cluster&follow=false&lines=0")
        #expect(ClusterTailEvents.ids(none.bodyText).isEmpty && ClusterTailEvents.place(none.bodyText) == apiIDs.last, "\(none.bodyText)")
        let zero = try loa.cli(["tail", "--cluster", "--json", "-n", "0"])
        #expect(zero.status == 0 && zero.output.isEmpty, "\(zero.output)")

        // A client that read up to an id, then retention deleted past it: told so (`event: pruned`), not moved on silently.
        let page = try await loa.api("/api/v1/log/stream?scope=cluster&follow=false&last_event_id=0")
        let ids = ClusterTailEvents.ids(page.bodyText)
        try #require(ids.count == file.count && ids.count > 20)
        _ = try Self.psql("DELETE FROM \(schema).cluster_events WHERE id <= \(ids[10])")
        let resumed = try await loa.api("/api/v1/log/stream?scope=cluster&follow=false&last_event_id=\(ids[5])")
        #expect(resumed.bodyText.contains("event: pruned\ndata: {\"after\":\(ids[5]),\"first\":\(ids[11]),"), "\(resumed.bodyText.prefix(300))")
        #expect(ClusterTailEvents.ids(resumed.bodyText) == Array(ids[11...]))
        // One whose place is still kept is not told.
        let kept = try await loa.api("/api/v1/log/stream?scope=cluster&follow=false&last_event_id=\(ids[12])")
        #expect(!kept.bodyText.contains("event: pruned") && ClusterTailEvents.ids(kept.bodyText) == Array(ids[13...]))

        // `loa tail --cluster --follow` behind the retention: every kept line goes, an id is burnt (a gap after the
        // follower's place), then new lines come: the follower says on stderr that lines were deleted.
        let follow = try Child(Env.loaBinary, ["tail", "--cluster", "--follow", "--json", "--config", loa.configPath], env: loa.env,
                               log: loa.work.file("follow-pruned.txt"), errLog: loa.work.file("follow-pruned-err.txt"))
        defer { follow.signal(SIGKILL); _ = follow.wait(seconds: 5) }
        try await poll(30, "the follower to print the kept lines") { follow.output.split(separator: "\n").count >= ids.count - 11 }
        _ = try Self.psql("DELETE FROM \(schema).cluster_events; SELECT nextval(pg_get_serial_sequence('\(schema).cluster_events', 'id'))")
        _ = SimCampaign.write(loa.work, id: "it-clog-pruned2", n: 5)
        #expect(try loa.cli(["campaign", "submit", loa.work.file("campaign/campaign.json")]).status == 0)
        let errors = loa.work.file("follow-pruned-err.txt")
        try await poll(30, "the follower to say lines were deleted") {
            ((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "").contains("deleted by the retention")
        }
        try await poll(30, "the follower to go on with the new lines") { follow.output.contains("it-clog-pruned2") }
    }

    // MARK: - Helpers of this file

    /// `count` daemons on one schema of the suite's PostgreSQL, nodes `n1`… each in a work directory of its own.
    private func startNodes(_ count: Int, label: String, sim: GatewaySimProcess, rate: Double = 150,
                            schema: String? = nil) async throws -> [LoaDaemonProcess] {
        let env = ProcessInfo.processInfo.environment
        guard let url = env["LOA_PG_URL"], let passwordFile = env["LOA_PG_PASSWORD_FILE"] else {
            throw HarnessError(message: "LOA_PG_URL and LOA_PG_PASSWORD_FILE are not set: run the suite through Tests/run.sh")
        }
        let schema = schema ?? "it_clog_\(label)_\(UInt32.random(in: 0...UInt32.max))"
        var nodes: [LoaDaemonProcess] = []
        for i in 1...count {
            let store = #""store": {"kind": "postgresql", "url": "\#(url)", "password": {"file": "\#(passwordFile)"}, "schema": "\#(schema)", "node": "n\#(i)"}"#
            let loa = try LoaDaemonProcess(work: WorkDir("clog-\(label)-n\(i)"), carriers: "[\(SimCarriers.kannel("gw", sim, rate: rate, inFlight: 8))]",
                                           defaultCarrier: "gw", extraConfig: store)
            try await loa.start()
            nodes.append(loa)
        }
        return nodes
    }

    /// Runs SQL on the suite's PostgreSQL as the tests' user (here: what retention would have deleted).
    private static func psql(_ sql: String) throws -> String {
        let env = ProcessInfo.processInfo.environment
        guard let url = env["LOA_PG_URL"], let passwordFile = env["LOA_PG_PASSWORD_FILE"],
              let password = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
            throw HarnessError(message: "LOA_PG_URL and LOA_PG_PASSWORD_FILE are not set: run the suite through Tests/run.sh")
        }
        let r = try run("/usr/bin/psql", [url, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                        env: ["PGPASSWORD": password.trimmingCharacters(in: .whitespacesAndNewlines)], timeout: 30)
        guard r.status == 0 else { throw HarnessError(message: "psql: \(r.output)") }
        return r.output
    }

    private static func fileLines(_ loa: LoaDaemonProcess) -> [String] {
        ((try? String(contentsOfFile: loa.work.file("data/delivery.log"), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    private static func object(_ line: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
    }

    /// `got` holds exactly the lines of `union`, each once, in an order that keeps every node's seq order and every
    /// message's own order (queued, sending, then its answer and receipts: each change of a message waits for the
    /// previous one's commit, so a later event has a higher cluster id).
    private static func expectSameEventsInOrder(_ got: [String], _ union: [String], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(got.count == union.count, "\(what): \(got.count) lines, the nodes' files \(union.count)", sourceLocation: sourceLocation)
        #expect(Set(got).count == got.count, "\(what): a line given twice", sourceLocation: sourceLocation)
        let missing = Set(union).subtracting(got)
        let same = Set(got) == Set(union)
        #expect(same, "\(what): not the nodes' lines (\(missing.count) missing: \(missing.prefix(3)))", sourceLocation: sourceLocation)
        var lastSeq: [String: Int] = [:]
        var lastRank: [Int: Int] = [:]
        // A message is queued, then claimed (`sending`), then answered and receipted; a receipt may come before the
        // send's answer is recorded (the gateway is fast), so those two have no order of their own.
        let rank = ["queued": 0, "sending": 1, "accepted": 2, "receipt": 2]
        var outOfOrder: [String] = []
        for line in got {
            let o = object(line)
            guard let node = o["node"] as? String, let seq = o["seq"] as? Int else { outOfOrder.append(line); continue }
            if seq <= lastSeq[node] ?? 0 { outOfOrder.append(line) }
            lastSeq[node] = seq
            if let m = o["message"] as? Int, m > 0, let r = rank[o["event"] as? String ?? ""] {
                if r < lastRank[m] ?? -1 { outOfOrder.append(line) }
                lastRank[m] = r
            }
        }
        let inOrder = outOfOrder.isEmpty
        #expect(inOrder, "\(what): \(outOfOrder.count) out of order, first: \(outOfOrder.prefix(3))", sourceLocation: sourceLocation)
    }
}

/// The ids of a server-sent-events body, in order.
private enum ClusterTailEvents {
    static func ids(_ body: String) -> [Int] {
        body.components(separatedBy: "\n\n").compactMap { block in
            let lines = block.split(separator: "\n")
            guard lines.contains(where: { $0.hasPrefix("data: ") }) else { return nil }
            return lines.first { $0.hasPrefix("id: ") }.flatMap { Int($0.dropFirst(4)) }
        }
    }

    /// The place a `follow=false` answer ended at: its last block, an `id:` without data.
    static func place(_ body: String) -> Int? {
        body.components(separatedBy: "\n\n").last { !$0.isEmpty }.flatMap { block in
            block.hasPrefix("id: ") && !block.contains("data: ") ? Int(block.dropFirst(4)) : nil
        }
    }
}

/// An SSE client in a subprocess (curl -N) on a node's log stream, its output in a file.
private final class SSEClient {
    let child: Child

    init(_ loa: LoaDaemonProcess, name: String, query: String, lastEventID: String? = nil) throws {
        var args = ["-sN", "--noproxy", "*", "-H", "Authorization: Bearer \(loa.token)"]
        if let lastEventID { args += ["-H", "Last-Event-ID: \(lastEventID)"] }
        args.append(loa.base + "/api/v1/log/stream?" + query)
        child = try Child("/usr/bin/curl", args, log: loa.work.file("sse-\(name).txt"))
    }

    var text: String { child.output }
    /// The events as (id, data) in order; a last event still being written is left out.
    var events: [(id: Int, data: String)] {
        var list: [(Int, String)] = []
        for block in text.components(separatedBy: "\n\n").dropLast() {
            let lines = block.split(separator: "\n")
            guard let id = lines.first(where: { $0.hasPrefix("id: ") }).flatMap({ Int($0.dropFirst(4)) }),
                  let data = lines.first(where: { $0.hasPrefix("data: ") }) else { continue }
            list.append((id, String(data.dropFirst(6))))
        }
        return list
    }
}
