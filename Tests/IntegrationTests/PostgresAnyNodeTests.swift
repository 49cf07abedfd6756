import Foundation
import LoaCarriers
import LoaCore
import Testing

/// Issue 21, item 2: any node accepts submissions, receipts and operator requests, and sees the whole cluster's
/// campaigns. Two real daemons on one PostgreSQL schema behind the gateway simulator; each node's `public_url` names
/// the *other* node, so every receipt for a message one node sent lands on the other; the campaign is submitted on one
/// node, paused on the other and resumed on the first. The hand-off window that paces the carrier from receipts
/// hears them on the sending node, wherever they land.
@Suite(.ownThreads, .serialized, .enabled(if: postgresWanted)) struct PostgresAnyNodeTests {
    @Test(.timeLimit(.minutes(4))) func anyNodeTakesSubmissionsReceiptsAndOperatorRequests() async throws {
        let simWork = WorkDir("pg-anynode-sim")
        let sim = try GatewaySimProcess(work: simWork, args: ["--seed", "11", "--delivered-rate", "1"], env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let store = try PostgresDaemonTests.storeConfig("anynode")
        let ports = [freePort(), freePort()]
        var nodes: [LoaDaemonProcess] = []
        for (i, name) in ["n1", "n2"].enumerated() {
            let work = WorkDir("pg-anynode-\(name)")
            let other = ports[1 - i]
            let config = store.replacingOccurrences(of: "\"node\": \"it\"", with: "\"node\": \"\(name)\"")
                + ", \"public_url\": \"http://127.0.0.1:\(other)\""
            // Pacing from receipts is on (Kannel's default): the receipts of this node's sends land on the other node,
            // which announces them to this node's hand-off window (``ClusterReceiptFeed``); without that the window
            // would hold its probe's messages as outstanding and stop sending until the gateway counted as silent.
            let carrier = SimCarriers.kannel("gw", sim, rate: 60, inFlight: 4).replacingOccurrences(of: #"{"name": "gw","#,
                                                                                                   with: #"{"name": "gw", "pace_from_receipts": true,"#)
            let loa = try LoaDaemonProcess(work: work, carriers: "[\(carrier)]", defaultCarrier: "gw",
                                           extraConfig: config, port: ports[i])
            // One receipt secret for the cluster: a receipt URL one node hands out is checked by the other.
            loa.extraEnv["LOA_RECEIPT_SECRET"] = "it-cluster-receipts"
            nodes.append(loa)
        }
        let n1 = nodes[0], n2 = nodes[1]
        for loa in nodes { try await loa.start() }
        defer { for loa in nodes { _ = loa.stop() } }
        let n = 600, id = "it-anynode"
        let expected = SimCampaign.write(n1.work, id: id, n: n)
        let submit = try n1.cli(["campaign", "submit", n1.work.file("campaign/campaign.json")])
        try #require(submit.status == 0, "submit: \(submit.output)")
        // Node 2 sees the campaign node 1 took, and both send.
        try await poll(30, "both nodes to send") {
            let a = n1.logEvents().contains { $0["event"] as? String == "accepted" }
            let b = n2.logEvents().contains { $0["event"] as? String == "accepted" }
            return a && b
        }
        // Paused on node 2: node 1 stops too (it reads the campaign's state from the store).
        let pause = try n2.cli(["campaign", "pause", id])
        try #require(pause.status == 0, "pause on n2: \(pause.output)")
        try await poll(10, "node 1 to see the pause") { try await n1.campaign(id)["state"] as? String == "paused" }
        let pausedSeen = Date()
        // Wait for the gateway to go quiet (requests in flight at the pause may finish), by polling, not sleeping.
        var last = -1, quiet = 0
        try await poll(20, every: 0.5, "the gateway to go quiet after the pause") {
            let now = try await sim.stats()["accepted"] as? Int ?? 0
            quiet = now == last ? quiet + 1 : 0
            last = now
            return quiet >= 3
        }
        let acceptedWhilePaused = last
        #expect(acceptedWhilePaused < n, "the campaign finished before the pause took hold: \(acceptedWhilePaused)")
        let resumedAt = Date()
        let resume = try n1.cli(["campaign", "resume", id])
        try #require(resume.status == 0, "resume on n1: \(resume.output)")
        let states = try await SimCampaign.settle(n1, sim, id: id, n: n)
        #expect(states["delivered"] == n, "\(states)")
        #expect(try await SimCampaign.states(n2, id) == states, "both nodes show the same campaign")
        let accepted = try await sim.accepted()
        #expect(Set(accepted.keys) == Set(expected.keys.map { $0.filter(\.isNumber) }) && accepted.values.allSatisfy { $0 == 1 },
                "each recipient accepted once at the gateway")
        // Every receipt went to the node that did not send the message: each node applied the other's.
        let logs = nodes.map { $0.logEvents() }
        for (i, log) in logs.enumerated() {
            let sent = Set(log.filter { $0["event"] as? String == "accepted" }.compactMap { $0["message"] as? Int })
            let receipts = Set(logs[1 - i].filter { $0["event"] as? String == "receipt" }.compactMap { $0["message"] as? Int })
            #expect(!sent.isEmpty && sent.isSubset(of: receipts), "node \(i + 1)'s sends have their receipts on the other node")
            #expect(log.filter { $0["event"] as? String == "receipt" }.allSatisfy { r in !sent.contains(r["message"] as? Int ?? -1) },
                    "no receipt landed on the node that sent")
        }
        // Each node's hand-off window heard, from the other node, a receipt for every message it sent, and holds none.
        for (i, loa) in nodes.enumerated() {
            let sent = logs[i].filter { $0["event"] as? String == "accepted" }.count
            let r = try await loa.api("/api/v1/carriers")
            let gw = ((try JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]]) ?? []).first { $0["name"] as? String == "gw" } ?? [:]
            #expect(gw["handoff_passed_on"] as? Int == sent && gw["handoff_passed_on_elsewhere"] as? Int == sent,
                    "node \(i + 1) sent \(sent): passed on \(gw["handoff_passed_on"] ?? "-"), elsewhere \(gw["handoff_passed_on_elsewhere"] ?? "-")")
            #expect(gw["handoff_outstanding"] as? Int == 0, "node \(i + 1) still holds \(gw["handoff_outstanding"] ?? "-") hand-offs")
        }
        // Nothing started between the pause (seen, plus a second for a claim already under way) and the resume.
        let from = pausedSeen.addingTimeInterval(1), to = resumedAt
        let started = logs.joined().filter { e in
            guard e["event"] as? String == "sending", let t = (e["time"] as? String).flatMap(ISOTime.parse) else { return false }
            let d = Date(timeIntervalSince1970: Double(t) / 1000)
            return d > from && d < to
        }
        #expect(started.isEmpty, "sent while paused: \(started.prefix(3))")
    }
}
