import Foundation
import LoaCarriers
import LoaCore
import Testing

/// Users, roles, two-person approval, the test send and the audit trail, through the real binary and the gateway
/// simulator (issue 20). These daemons keep Loa's default: approval required.
@Suite(.ownThreads, .serialized) struct AccessTests {
    static let password = "correct horse battery"

    /// Adds a user with `loa users add` (password on stdin) and returns a new token for them from `loa tokens create`.
    static func user(_ loa: LoaDaemonProcess, _ name: String, _ role: String) throws -> String {
        let add = try loa.cli(["users", "add", name, "--role", role], stdin: password + "\n")
        try #require(add.status == 0, "users add \(name): \(add.output)")
        let created = try loa.cli(["tokens", "create", "--user", name, "--name", "it"])
        try #require(created.status == 0, "tokens create \(name): \(created.output)")
        return String(try #require(created.output.firstMatch(of: /loa_[0-9a-f]{64}/)).0)
    }

    static func audit(_ loa: LoaDaemonProcess, token: String) async throws -> [[String: Any]] {
        let r = try await loa.api("/api/v1/audit?limit=10000", token: token)
        try #require(r.status == 200, "audit: \(r.status) \(r.bodyText)")
        return (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["rows"] as? [[String: Any]] ?? []
    }

    @Test(.timeLimit(.minutes(4))) func aSecondPersonApprovesAfterATestSendAndEveryActionIsOnTheRecord() async throws {
        let work = WorkDir("access")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "5", "--delivered-rate", "1"], env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("gw", sim))]", defaultCarrier: "gw", approval: true)
        let n = 30
        let expected = SimCampaign.write(work, id: "vote", n: n)
        try await loa.start()
        defer { _ = loa.stop() }
        let planner = try Self.user(loa, "lan", "planner")
        let approver = try Self.user(loa, "minh", "approver")
        let viewer = try Self.user(loa, "vy", "viewer")
        let listed = try loa.cli(["users", "list"])
        #expect(listed.status == 0 && listed.output.contains("lan") && listed.output.contains("approver"), "\(listed.output)")

        // No token of the right shape, a wrong one: 401.
        #expect(try await loa.api("/api/v1/campaigns", token: "loa_" + String(repeating: "0", count: 64)).status == 401)
        #expect(try await loa.api("/api/v1/campaigns", token: "not-a-token").status == 401)

        // The planner submits: the campaign waits, and nothing reaches the gateway.
        let submit = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")], token: planner)
        try #require(submit.status == 0, "submit: \(submit.output)")
        #expect(submit.output.contains("pending-approval"), "\(submit.output)")
        #expect(try await loa.campaign("vote")["state"] as? String == "pending-approval")
        #expect(try await loa.campaign("vote")["submitted_by"] as? String == "lan")
        // The planner cannot approve it (their role), a viewer cannot pause it.
        let own = try await loa.api("/api/v1/campaigns/vote/approve", method: "POST", token: planner, body: "{}")
        #expect(own.status == 403, "\(own.bodyText)")
        #expect(try await loa.api("/api/v1/campaigns/vote/pause", method: "POST", token: viewer).status == 403)
        #expect(try await loa.api("/api/v1/campaigns/vote", token: viewer).status == 200)

        // A test send to two proof numbers, before approval: they alone reach the gateway.
        let proof = ["0912000001", "0987000002"]
        let test = try loa.cli(["campaign", "test-send", "vote"] + proof, token: approver)
        try #require(test.status == 0, "test-send: \(test.output)")
        _ = try await SimCampaign.settle(loa, sim, id: "vote--test-1", n: 2)
        #expect(try await sim.accepted() == ["84912000001": 1, "84987000002": 1])
        let vote = try await loa.campaign("vote")
        #expect(vote["state"] as? String == "pending-approval" && vote["states"] as? [String: Int] == ["queued": n], "\(vote)")
        let testLines = loa.logEvents().filter { $0["campaign"] as? String == "vote--test-1" && $0["event"] as? String == "accepted" }
        #expect(testLines.count == 2)
        #expect(loa.logEvents().filter { $0["campaign"] as? String == "vote" }.isEmpty)

        // The approver approves; every recipient gets the slogan once.
        let approve = try loa.cli(["campaign", "approve", "vote", "--comment", "checked the samples"], token: approver)
        try #require(approve.status == 0, "approve: \(approve.output)")
        let states = try await SimCampaign.settle(loa, sim, id: "vote", n: n)
        #expect(states["delivered"] == n, "\(states)")
        let accepted = try await sim.accepted()
        #expect(Set(accepted.keys) == Set(expected.keys.map { $0.filter(\.isNumber) }).union(["84912000001", "84987000002"]))
        #expect(accepted.values.allSatisfy { $0 == 1 })
        #expect(try await loa.campaign("vote")["approved_by"] as? String == "minh")

        // A revoked token is 401 from then on.
        let tokens = try loa.cli(["tokens", "list", "--user", "vy", "--json"])
        let vyID = try #require(((try JSONSerialization.jsonObject(with: Data(tokens.output.utf8)) as? [[String: Any]])?.first?["id"]).map { "\($0)" })
        #expect(try loa.cli(["tokens", "revoke", vyID]).status == 0)
        #expect(try await loa.api("/api/v1/campaigns", token: viewer).status == 401)
        #expect(!tokens.output.contains("loa_"), "a token listing shows no token")

        // Every action above, once, with its user and address. The approver reads the trail; a viewer may not.
        #expect(try await loa.api("/api/v1/audit", token: planner).status == 403)
        let rows = try await Self.audit(loa, token: approver)
        let seen = rows.map { "\($0["user"] ?? "") \($0["action"] ?? "") \(($0["campaign"] as? String) ?? "-")" }
        let expectedRows = [
            "api_token user.add -", "api_token token.create -", "api_token user.add -", "api_token token.create -",
            "api_token user.add -", "api_token token.create -", " auth.failed -", " auth.failed -",
            "lan campaign.create vote", "lan campaign.submit vote", "lan auth.forbidden -", "vy auth.forbidden -",
            "minh campaign.test-send vote", "minh campaign.approve vote", "api_token token.revoke -", " auth.failed -", "lan auth.forbidden -",
        ]
        #expect(seen == expectedRows, "\(seen)")
        #expect(rows.allSatisfy { $0["address"] as? String == "127.0.0.1" }, "\(rows)")
        let approval = try #require(rows.first { $0["action"] as? String == "campaign.approve" })
        #expect((approval["detail"] as? [String: Any])?["comment"] as? String == "checked the samples")
        let csv = work.file("audit.csv")
        let export = try loa.cli(["audit", "--csv", csv, "--campaign", "vote"], token: approver)
        #expect(export.status == 0, "\(export.output)")
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 5 && lines[0] == "id,time,user,address,action,campaign,detail" && lines[4].contains(",minh,127.0.0.1,campaign.approve,vote,"), "\(lines)")
    }

    /// Refusals cost their sender nothing and the trail is append-only: a client sending wrong tokens in a loop gets
    /// a bounded number of rows (a burst of 60, then one a second), and the next row kept says how many were not.
    @Test(.timeLimit(.minutes(2))) func aFloodOfWrongTokensCannotFillTheAuditTrail() async throws {
        let work = WorkDir("audit-flood")
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p")
        try await loa.start()
        defer { _ = loa.stop() }
        let started = Date()
        for i in 0..<300 {
            #expect(try await loa.api("/api/v1/campaigns", token: "loa_wrong-token-\(i)-0123456789").status == 401)
        }
        let seconds = Date().timeIntervalSince(started)
        let failed = try await Self.audit(loa, token: loa.token).filter { $0["action"] as? String == "auth.failed" }
        #expect(failed.count >= 60 && Double(failed.count) <= 60 + seconds.rounded(.up) + 1,
                "\(failed.count) rows for 300 refusals in \(seconds) s")
        // The refusals let go show up, counted, on the next row kept.
        try await poll(10, every: 0.5, "a refusal after the budget refills") {
            _ = try await loa.api("/api/v1/campaigns", token: "loa_wrong-token-last-0123456789")
            let rows = try await Self.audit(loa, token: loa.token).filter { $0["action"] as? String == "auth.failed" }
            return rows.contains { ($0["detail"] as? [String: Any])?["not_kept_before"] != nil }
        }
    }

    /// An approved campaign whose slogan changes before its start goes back to pending-approval and sends nothing;
    /// its submitter (here the admin's api_token) may not approve it. Passwords are Argon2id strings in the store,
    /// and the audit table refuses UPDATE and DELETE even from the sqlite3 shell.
    @Test(.timeLimit(.minutes(3))) func aChangedSloganAfterApprovalNeedsANewApproval() async throws {
        let work = WorkDir("access-change")
        let sim = try GatewaySimProcess(work: work, args: ["--seed", "6", "--delivered-rate", "1"], env: ["LOA_SIM_TOKEN": "sim-password"])
        try await sim.start()
        defer { sim.stop() }
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(SimCarriers.kannel("gw", sim))]", defaultCarrier: "gw", approval: true)
        _ = SimCampaign.write(work, id: "change", n: 5)
        // Starts 20 s from now: long enough to approve and change it before, and the test then sees the start pass.
        let start = Date().addingTimeInterval(20)
        let path = work.file("campaign/campaign.json")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: "2026-01-01T07:00:00+07:00", with: ISOTime.format(Int64(start.timeIntervalSince1970 * 1000)))
            .write(toFile: path, atomically: true, encoding: .utf8)
        try await loa.start()
        defer { _ = loa.stop() }
        let approver = try Self.user(loa, "minh", "approver")
        try #require(try loa.cli(["campaign", "submit", path]).status == 0)
        let approve = try loa.cli(["campaign", "approve", "change"], token: approver)
        try #require(approve.status == 0, "\(approve.output)")
        #expect(try await loa.campaign("change")["state"] as? String == "scheduled")

        work.write("campaign/slogan.txt", "Đã đổi: {{name}} ơi, góp ý trên VNeID!\n")
        let replace = try loa.cli(["campaign", "submit", path, "--replace"])
        try #require(replace.status == 0, "replace: \(replace.output)")
        #expect(try await loa.campaign("change")["state"] as? String == "pending-approval")
        // The submitter may not approve it, even as an admin.
        let own = try await loa.api("/api/v1/campaigns/change/approve", method: "POST", body: "{}")
        #expect(own.status == 403 && own.bodyText.contains("self-approval"), "\(own.bodyText)")
        // Past its start it still waits, and the gateway got nothing.
        try await poll(60, "the campaign's start to pass") { Date() > start.addingTimeInterval(3) }
        let c = try await loa.campaign("change")
        #expect(c["state"] as? String == "pending-approval" && c["states"] as? [String: Int] == ["queued": 5], "\(c)")
        #expect(try await sim.stats()["requests"] as? Int == 0)
        let rows = try await Self.audit(loa, token: approver).filter { $0["campaign"] as? String == "change" }.map { "\($0["user"] ?? "") \($0["action"] ?? "")" }
        #expect(rows == ["api_token campaign.create", "api_token campaign.submit", "minh campaign.approve", "api_token campaign.replace",
                         "api_token campaign.submit", "api_token campaign.approve-refused"], "\(rows)")

        #expect(loa.stop() == 0)
        let db = work.file("data/loa.db")
        let stored = try run("/usr/bin/sqlite3", [db, "SELECT password FROM users"])
        #expect(stored.output.hasPrefix("$argon2id$v=19$m=65536,t=2,p=1$") && !stored.output.contains("horse"), "\(stored.output)")
        for sql in ["DELETE FROM audit", "UPDATE audit SET user = 'x'"] {
            let r = try run("/usr/bin/sqlite3", [db, sql])
            #expect(r.status != 0 && r.output.contains("append-only"), "\(sql): \(r.output)")
        }
        #expect(try run("/usr/bin/sqlite3", [db, "SELECT COUNT(*) FROM audit WHERE campaign = 'change'"]).output == "6\n")
    }
}
