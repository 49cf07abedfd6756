import Foundation
import LoaCore
import Synchronization
import Testing
@testable import LoaStore

/// What only the PostgreSQL store has: its libpq wrapper (binds counted, columns by name, errors that name the
/// statement and never the password), one daemon per node, claims by several nodes that never take the same message,
/// a recovery that touches only its own node's messages, and a connection lost mid-run. Skipped without `LOA_PG_URL`
/// (outside CI; Tests/run.sh sets it).
@Suite(.enabled(if: StoreKind.all.contains(.postgresql))) struct PostgresTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    func connection(_ dir: TempDir) throws -> PGConnection {
        try PGConnection(settings: testPostgresSettings(schema: testSchema(dir.path), node: "probe"))
    }

    @Test func placeholdersAreNumberedOutsideLiterals() {
        #expect(PGConnection.numberPlaceholders("SELECT '?' AS q, ? AS a, \"x?\" FROM t WHERE b = ?") == ("SELECT '?' AS q, $1 AS a, \"x?\" FROM t WHERE b = $2", 2))
    }

    @Test func bindingTooFewOrTooManyValuesThrowsNamingTheSQL() throws {
        let dir = TempDir(.postgresql)
        let db = try connection(dir)
        let st = try db.prepare("SELECT ?::bigint + ?::bigint AS sum")
        for values: [SQLValue] in [[.int(1)], [.int(1), .int(2), .int(3)]] {
            do {
                try st.query(values) { _ in }
                Issue.record("\(values.count) values were bound to 2 parameters")
            } catch {
                #expect("\(error)".contains("\(values.count) values bound to 2 parameters") && "\(error)".contains("SELECT ?::bigint + ?::bigint"), "\(error)")
            }
        }
        var sum: Int64 = 0
        try st.query([.int(40), .int(2)]) { sum = $0.int("sum") }
        #expect(sum == 42)
    }

    @Test func columnsAreReadByNameWhateverTheirOrderAndTextKeepsItsBytes() throws {
        let dir = TempDir(.postgresql)
        let db = try connection(dir)
        var out: [String] = []
        try db.prepare("SELECT ?::text AS b, ?::bigint AS a, NULL::text AS n, true AS t").query([.text("ü \"x\" \u{2603}\0end"), .int(-7)]) { r in
            out = ["\(r.int("a"))", r.text("b") ?? "nil", r.text("n") ?? "nil", "\(r.isNull("n"))", "\(r.int("t"))"]
        }
        // PostgreSQL text holds no NUL: it is kept visible as U+2400, never cut off.
        #expect(out == ["-7", "ü \"x\" \u{2603}\u{2400}end", "nil", "true", "1"])
    }

    @Test func aFailedStatementIsNamedAndAWrongPasswordIsNeverShown() throws {
        let dir = TempDir(.postgresql)
        let db = try connection(dir)
        do {
            try db.prepare("SELECT * FROM no_such_table WHERE id = ?").query([.int(1)]) { _ in }
            Issue.record("a missing table was read")
        } catch let error as PostgresError {
            #expect(error.sqlState == "42P01" && !error.connectionLost)
            #expect(error.description.contains("no_such_table") && error.description.contains("preparing SELECT * FROM no_such_table"), "\(error)")
        }
        var settings = try testPostgresSettings(schema: "public")
        settings.password = "wrong-password-do-not-show"
        do {
            _ = try PGConnection(settings: settings)
            Issue.record("a wrong password connected")
        } catch {
            #expect(!"\(error)".contains("wrong-password-do-not-show") && "\(error)".contains("password authentication failed"), "\(error)")
        }
        #expect(PostgresSettings.redact("postgresql://loa:secret@db:5432/loa") == "postgresql://loa:***@db:5432/loa")
        #expect(PostgresSettings.redact("postgresql://loa@db:5432/loa") == "postgresql://loa@db:5432/loa")
    }

    /// Two stores of one schema are two nodes: each claims with `FOR UPDATE SKIP LOCKED`, so claims made at the same
    /// time never take one message twice; a node's start turns only its own `sending` messages into `unknown`; a
    /// second daemon for a node that is held is refused, naming the holder.
    @Test func nodesClaimDisjointlyAndRecoverOnlyTheirOwn() throws {
        let base = TempDir(.postgresql)
        let schema = testSchema(base.path)
        let dirA = TempDir(.postgresql), dirB = TempDir(.postgresql)
        func open(_ dir: TempDir, _ node: String) throws -> PostgresStore {
            try PostgresStore(settings: testPostgresSettings(schema: schema, node: node), directory: dir.path,
                              log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
        }
        let a = try open(dirA, "a")
        let b = try open(dirB, "b")
        try a.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        _ = try a.ingest(campaign: "c1", rows: (0..<400).map { accepted("+849123\(String(format: "%05d", $0))", line: $0 + 2) })
        try a.commitCampaign("c1")
        _ = try a.advanceCampaigns(now: clock.now())
        // Each node claims some on its own (so both hold some, however the threads below are scheduled), then both
        // claim at once, in rounds, until nothing is left.
        let claimed = Mutex<[[Int64]]>([try a.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now()).map(\.id),
                                        try b.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now()).map(\.id)])
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let store = i == 0 ? a : b
            for _ in 0..<40 {
                guard let got = try? store.claim(campaign: "c1", carrier: "k", limit: 25, now: clock.now()), !got.isEmpty else { break }
                claimed.withLock { $0[i] += got.map(\.id) }
            }
        }
        let idsA = claimed.withLock { $0[0] }, idsB = claimed.withLock { $0[1] }
        #expect(idsA.count + idsB.count == 400 && Set(idsA).isDisjoint(with: idsB), "\(idsA.count) + \(idsB.count)")
        #expect(!idsA.isEmpty && !idsB.isEmpty)
        let rec = try #require(try b.campaign("c1"))
        #expect(rec.states == ["sending": 400], "both nodes' counters, summed: \(rec.states)")
        // A second daemon for node a is refused while a holds it.
        do {
            _ = try open(TempDir(.postgresql), "a")
            Issue.record("a second daemon took node a")
        } catch let error as StoreError {
            guard case .conflict(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("node a") && message.contains("pid \(getpid())"), "\(message)")
        }
        // Node a stops with its messages in flight; its restart makes only its own unknown.
        a.close()
        let again = try open(dirA, "a")
        defer { again.close(); b.close() }
        // (Node b may have settled them first, as a survivor, if its lease round fell in between.)
        #expect(again.recovery.unknownMessages == Int64(idsA.count) || again.recovery.unknownMessages == 0)
        let after = try #require(try again.campaign("c1"))
        #expect(after.states == ["unknown": Int64(idsA.count), "sending": Int64(idsB.count)].filter { $0.value > 0 }, "\(after.states)")
        #expect(try b.messageStates(campaign: "c1").filter { $0.state == .sending }.count == idsB.count)
    }

    /// A node that stops renewing its lease (as if stopped by SIGSTOP): it stops holding it locally when the lease
    /// ends, claims nothing (the database's fence), a survivor turns its claims into `unknown` after the grace, and
    /// when it renews again it finds its lease gone and takes a new epoch before claiming again.
    @Test(.timeLimit(.minutes(1))) func aSurvivorSettlesAStoppedNodesClaimsAndTheNodeTakesANewLease() throws {
        let base = TempDir(.postgresql)
        let schema = testSchema(base.path)
        let dirA = TempDir(.postgresql), dirB = TempDir(.postgresql)
        func open(_ dir: TempDir, _ node: String) throws -> PostgresStore {
            var settings = try testPostgresSettings(schema: schema, node: node)
            settings.leaseMillis = 1000
            return try PostgresStore(settings: settings, directory: dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
        }
        let a = try open(dirA, "a"), b = try open(dirB, "b")
        defer { a.close(); b.close() }
        let events = Mutex<[ClusterEvent]>([])
        b.cluster.observe { e in if case .members = e { return }; events.withLock { $0.append(e) } }
        let aEvents = Mutex<[ClusterEvent]>([])
        a.cluster.observe { e in if case .members = e { return }; aEvents.withLock { $0.append(e) } }
        try a.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        _ = try a.ingest(campaign: "c1", rows: (0..<20).map { accepted("+849123\(String(format: "%05d", $0))", line: $0 + 2) })
        try a.commitCampaign("c1")
        _ = try a.advanceCampaigns(now: clock.now())
        let firstEpoch = a.cluster.epoch
        #expect(a.cluster.holds() && b.cluster.holds())
        let claimedA = try a.claim(campaign: "c1", carrier: "k", limit: 5, now: clock.now())
        #expect(claimedA.count == 5)
        a.cluster.suspended.store(true, ordering: .relaxed)
        func poll(_ what: String, _ done: () throws -> Bool) throws {
            let deadline = ContinuousClock.now + .seconds(20)
            while try !done() {
                guard ContinuousClock.now < deadline else { Issue.record("timed out waiting for \(what)"); return }
                usleep(20_000)
            }
        }
        try poll("node a to stop holding its lease") { !a.cluster.holds() }
        try poll("node b to settle node a's claims") { events.withLock { $0.contains(.tookOver(node: "a", epoch: firstEpoch, settled: 5)) } }
        #expect(try b.campaign("c1")?.states == ["unknown": 5, "queued": 15])
        #expect(try a.claim(campaign: "c1", carrier: "k", limit: 5, now: clock.now()).isEmpty, "a node without its lease claimed")
        let bLog = logLines(dirB)
        #expect(bLog.filter { $0["event"] as? String == "unknown" }.map { $0["message"] as? Int }.map { Int64($0 ?? -1) }.sorted() == claimedA.map(\.id).sorted())
        // Back from the pause: the lease is gone in the database; a new epoch, nothing left to settle.
        a.cluster.suspended.store(false, ordering: .relaxed)
        try poll("node a to hold a lease again") { a.cluster.holds() }
        #expect(a.cluster.epoch == firstEpoch + 1)
        #expect(aEvents.withLock { $0 } == [.lost(reason: "the lease ended in the database"), .regained(epoch: firstEpoch + 1, settled: 0)])
        #expect(try a.claim(campaign: "c1", carrier: "k", limit: 5, now: clock.now()).count == 5)
        try poll("node b to see both nodes alive") { b.cluster.members().map(\.node) == ["a", "b"] && b.cluster.members().allSatisfy(\.alive) }
    }

    /// A connection lost under the store (the server restarted, or an administrator ended the session): the
    /// transaction it broke fails with an error that says so, and the next one reconnects and goes on, with the
    /// delivery log still equal to the store.
    @Test func aLostConnectionFailsOneTransactionAndTheNextReconnects() throws {
        let dir = TempDir(.postgresql)
        let store = try #require(try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock) as? PostgresStore)
        defer { store.close() }
        try store.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        _ = try store.ingest(campaign: "c1", rows: (0..<5).map { accepted("+8491234560\($0)", line: $0 + 2) })
        try store.commitCampaign("c1")
        _ = try store.advanceCampaigns(now: clock.now())
        let backend = try store.write { ctx -> Int64 in
            var pid: Int64 = 0
            try ctx.query("SELECT pg_backend_pid() AS pid") { pid = $0.int("pid") }
            return pid
        }
        let admin = try connection(dir)
        try admin.prepare("SELECT pg_terminate_backend(?::integer) AS done").query([.int(backend)]) { _ in }
        do {
            _ = try store.claim(campaign: "c1", carrier: "k", limit: 2, now: clock.now())
            Issue.record("a claim went through a terminated connection")
        } catch let error as PostgresError {
            #expect(error.connectionLost, "\(error)")
        }
        // The writer notes the failure just after it answers the caller: wait for it, within a deadline.
        let deadline = ContinuousClock.now + .seconds(10)
        while store.writerHealth.lastFailure == nil && ContinuousClock.now < deadline { usleep(2_000) }
        #expect(store.writerHealth.lastFailure?.contains("terminating connection") == true, "\(store.writerHealth)")
        let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 2, now: clock.now())
        #expect(claimed.count == 2)
        try store.record(claimed.map { SendOutcome(id: $0.id, result: .accepted(gatewayID: nil, detail: nil)) })
        #expect(try store.campaign("c1")?.states == ["sent": 2, "queued": 3])
        let log = logLines(dir)
        #expect(log.map { $0["event"] as? String ?? "" } == ["sending", "sending", "accepted", "accepted"])
        #expect(log.map { $0["seq"] as! Int } == [1, 2, 3, 4])
    }
}
