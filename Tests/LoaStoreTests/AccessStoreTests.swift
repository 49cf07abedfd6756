import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// Users, tokens, the audit trail and two-person approval in the store (issue 20).
@Suite struct AccessStoreTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    func open(_ dir: TempDir) throws -> any MessageStore {
        try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
    }

    /// The audit table refuses UPDATE and DELETE from any connection (triggers), not only through Loa's API.
    @Test(arguments: StoreKind.all) func theAuditTrailIsAppendOnly(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        try store.appendAudit(AuditEntry(at: 1, user: "lan", address: "127.0.0.1", action: "campaign.submit", campaign: "c1", detail: "{}"))
        store.close()
        if kind == .postgresql {
            // Another connection to the store's schema, as any client of the database would be.
            let db = try PGConnection(settings: testPostgresSettings(schema: testSchema(dir.path), node: "other"))
            for sql in ["UPDATE audit SET user_name = 'someone-else'", "DELETE FROM audit", "UPDATE audit SET detail = '{}' WHERE id = 1", "TRUNCATE audit"] {
                do {
                    try db.exec(sql)
                    Issue.record("\(sql) changed the audit trail")
                } catch { #expect("\(error)".contains("append-only"), "\(error)") }
            }
            var users: [String] = []
            try db.prepare("SELECT user_name FROM audit").query { users.append($0.text("user_name") ?? "") }
            #expect(users == ["lan"])
            return
        }
        let db = try Connection(path: dir.path + "/loa.db")
        for sql in ["UPDATE audit SET user = 'someone-else'", "DELETE FROM audit", "UPDATE audit SET detail = '{}' WHERE id = 1"] {
            #expect(throws: SQLiteError.self, "\(sql)") { try db.exec(sql) }
            do { try db.exec(sql) } catch { #expect("\(error)".contains("append-only"), "\(error)") }
        }
        var users: [String] = []
        try db.prepare("SELECT user FROM audit").query { users.append($0.text("user") ?? "") }
        #expect(users == ["lan"])
    }

    @Test(arguments: StoreKind.all) func approvalNeedsASecondPersonAndRejectionCancels(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        for id in ["c1", "c2"] {
            try store.createCampaign(submission(id), startAt: ISOTime.parse("2026-11-24T00:00:00Z")!, deadlineAt: ISOTime.parse("2026-11-30T00:00:00Z")!)
            _ = try store.ingest(campaign: id, generation: nil, rows: [accepted("+84912345678", line: 2)])
            #expect(try store.submitCampaign(id, generation: nil, by: "lan", approvalRequired: true) == .pendingApproval)
        }
        // Pending: never active work, so never claimed.
        _ = try store.advanceCampaigns(now: clock.now())
        #expect(try store.activeWork().isEmpty)
        #expect(throws: ApprovalRefused.self) { try store.decide("c1", approve: true, by: "lan") }
        #expect(try store.campaign("c1")?.state == .pendingApproval)
        #expect(try store.decide("c1", approve: true, by: "minh") == .scheduled)
        #expect(try store.campaign("c1")?.approvedBy == "minh" && store.campaign("c1")?.submittedBy == "lan")
        #expect(throws: StoreError.self) { try store.decide("c1", approve: true, by: "minh") }
        #expect(try store.decide("c2", approve: false, by: "minh") == .rejected)
        _ = try store.advanceCampaigns(now: clock.now())
        #expect(try store.campaign("c2")?.states == ["cancelled": 1])
        #expect(try store.activeWork().map(\.id) == ["c1"])
        // Approved and started: it has sent (or may have), so it cannot be replaced; a rejected one can.
        #expect(throws: StoreError.self) { try store.dropUnsentCampaign("c1") }
        #expect(try store.dropUnsentCampaign("c2") == .rejected)
        #expect(try store.campaign("c2") == nil)
    }

    @Test(arguments: StoreKind.all) func tokensResolveUntilRevokedOrTheirUserIsRemoved(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        try store.addUser(name: "lan", role: .planner, passwordHash: "$argon2id$x", now: 1)
        #expect(throws: StoreError.self) { try store.addUser(name: "lan", role: .viewer, passwordHash: "$argon2id$y", now: 2) }
        #expect(throws: StoreError.self) { try store.addToken(user: "nobody", label: "", hash: "h0", now: 1) }
        let a = try store.addToken(user: "lan", label: "laptop", hash: "h1", now: 1)
        let b = try store.addToken(user: "lan", label: "script", hash: "h2", now: 1)
        #expect(try store.principal(tokenHash: "h1")?.user == "lan" && store.principal(tokenHash: "h1")?.role == .planner)
        #expect(try store.revokeToken(id: a, now: 5).revokedAt == 5)
        #expect(try store.principal(tokenHash: "h1") == nil)
        #expect(throws: StoreError.self) { try store.revokeToken(id: a, now: 6) }
        #expect(try store.users().map(\.tokens) == [1])
        try store.removeUser(name: "lan", now: 7)
        #expect(try store.principal(tokenHash: "h2") == nil)
        #expect(try store.tokens(user: "lan").map(\.id) == [a, b] && store.tokens(user: "lan").allSatisfy { $0.revokedAt != nil })
    }
}
