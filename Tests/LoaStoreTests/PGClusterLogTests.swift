import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// The cluster's log in PostgreSQL (``PGClusterLog``): the rows are the node's file lines, written in the transaction
/// that made them (a rolled-back job's lines are in neither), pages filter by campaign without hiding ids, the
/// retention deletes old rows, and `store.cluster_log: false` writes none.
@Suite(.serialized, .enabled(if: StoreKind.all.contains(.postgresql))) struct PGClusterLogTests {
    struct Failure: Error {}

    func open(_ dir: TempDir, node: String, clog: Bool = true, clock: ManualTimeSource) throws -> PostgresStore {
        var settings = try testPostgresSettings(schema: testSchema(dir.path + "-shared"), node: node)
        settings.clusterLog = clog
        return try PostgresStore(settings: settings, directory: dir.path + "/" + node, log: DeliveryLogFile(path: dir.path + "/\(node).log"),
                                 clock: clock)
    }

    func lines(_ dir: TempDir, _ node: String) -> [String] {
        ((try? String(contentsOfFile: dir.path + "/\(node).log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func rowsAreTheNodesLinesOfCommittedTransactionsAndOldOnesAreDeleted() throws {
        let dir = TempDir(.postgresql)
        let clock = ManualTimeSource()
        let a = try open(dir, node: "a", clock: clock)
        defer { a.close() }
        try a.write { ctx in
            for m in 1...3 { ctx.emit(campaign: "c1", message: Int64(m), recipient: "+8491000000\(m)", carrier: "gw", event: "sending", status: "sending", attempt: 1) }
        }
        // A job that fails (alone, or rolled back to its savepoint beside another): its line is in neither log.
        let kept = PGJob { ctx in ctx.emit(campaign: "c2", message: 4, recipient: nil, carrier: nil, event: "rejected", status: "rejected", attempt: 0) }
        let dropped = PGJob { ctx -> Int in
            ctx.emit(campaign: "c2", message: 5, recipient: nil, carrier: nil, event: "rejected", status: "rejected", attempt: 0)
            throw Failure()
        }
        try a.queue.push(kept)
        try a.queue.push(dropped)
        kept.done.wait()
        dropped.done.wait()
        let file = lines(dir, "a")
        #expect(file.count == 4 && file.allSatisfy { $0.contains("\"node\":\"a\"") })
        let page = try a.clusterLogPage(after: 0, campaign: nil, limit: 100)
        #expect(page.rows.compactMap(\.line) == file)
        #expect(page.rows.map(\.id) == Array(page.rows[0].id...(page.rows[0].id + 3)))
        #expect(try a.clusterLogLastID() == page.rows.last?.id)
        // A campaign's page keeps every id, with the other campaigns' lines left out.
        let c2 = try a.clusterLogPage(after: 0, campaign: "c2", limit: 100)
        #expect(c2.rows.map(\.id) == page.rows.map(\.id) && c2.rows.compactMap(\.line) == [file[3]])

        // A node with the cluster's log off writes its file only.
        let b = try open(dir, node: "b", clog: false, clock: clock)
        try b.write { ctx in ctx.emit(campaign: "c1", message: 9, recipient: nil, carrier: nil, event: "rejected", status: "rejected", attempt: 0) }
        b.close()
        #expect(lines(dir, "b").count == 1)
        #expect(try a.clusterLogPage(after: 0, campaign: nil, limit: 100).rows.count == 4)

        // Eight days on, the next turn of the retention (due at once here) deletes the old rows, not the new one.
        clock.advance(byMillis: 8 * 86_400_000)
        try a.write { ctx in
            ctx.clusterLogPruneDue = .now()
            ctx.emit(campaign: "c1", message: 1, recipient: nil, carrier: "gw", event: "receipt", status: "delivered", attempt: 1)
        }
        // The writer prunes after it has answered the transaction's callers: look until it has (or 10 s).
        let deadline = MonotonicDeadline.after(seconds: 10)
        var left = try a.clusterLogPage(after: 0, campaign: nil, limit: 100).rows
        while left.count > 1 && !deadline.hasPassed {
            usleep(20_000)
            left = try a.clusterLogPage(after: 0, campaign: nil, limit: 100).rows
        }
        #expect(left.count == 1 && left.first?.line == lines(dir, "a").last)
    }

    /// "From now" must not pass over an id still committing: a transaction drew it, another drew a higher one and
    /// committed first. Here the first is held open by hand while the node writes; the follower that starts then
    /// gives the held line once it commits, and not the line visible at its start (the past).
    @Test func aFollowerFromNowGivesAnIdThatWasStillCommittingAtItsStart() throws {
        let dir = TempDir(.postgresql)
        let clock = ManualTimeSource()
        let a = try open(dir, node: "a", clock: clock)
        defer { a.close() }
        try a.write { ctx in ctx.emit(campaign: "c1", message: 1, recipient: nil, carrier: "gw", event: "sending", status: "sending", attempt: 1) }
        let held = try PGConnection(settings: try testPostgresSettings(schema: testSchema(dir.path + "-shared"), node: "h"))
        defer { held.finish() }
        try held.exec("BEGIN")
        try held.exec("INSERT INTO cluster_events(node, seq, campaign, at, line) VALUES('h', 1, 'c1', 0, '{\"held\":1}')")
        try a.write { ctx in ctx.emit(campaign: "c1", message: 2, recipient: nil, carrier: "gw", event: "sending", status: "sending", attempt: 1) }
        let past = try #require(a.clusterLogPage(after: 0, campaign: nil, limit: 100).rows.last)

        var follower = ClusterLogFollower(start: try a.clusterLogStart(lines: 0, campaign: nil), holdMillis: 60_000)
        var step = follower.take(try a.clusterLogPage(after: follower.last, campaign: nil, limit: 100), limit: 100, now: 0)
        #expect(step.events.isEmpty && step.next != .waitForNews, "holds at the id still committing: \(step)")
        try held.exec("COMMIT")
        try a.write { ctx in ctx.emit(campaign: "c1", message: 3, recipient: nil, carrier: "gw", event: "accepted", status: "sent", attempt: 1) }
        step = follower.take(try a.clusterLogPage(after: follower.last, campaign: nil, limit: 100), limit: 100, now: 10)
        #expect(step.events.map(\.line) == ["{\"held\":1}", lines(dir, "a").last], "the held line and the new one: \(step.events)")
        #expect(!step.events.contains { $0.id == past.id }, "the line visible at the start is the past")

        // The last lines: the 2 last of the log, or of a campaign, and all of them when there are fewer.
        try a.write { ctx in ctx.emit(campaign: "c2", message: 4, recipient: nil, carrier: "gw", event: "rejected", status: "rejected", attempt: 0) }
        let all = try a.clusterLogPage(after: 0, campaign: nil, limit: 100).rows
        for (lines, campaign, expected) in [(2, nil, Array(all.suffix(2))), (2, "c1", Array(all.dropLast().suffix(2))), (50, nil, all)] {
            var f = ClusterLogFollower(start: try a.clusterLogStart(lines: lines, campaign: campaign))
            let got = f.take(try a.clusterLogPage(after: f.last, campaign: campaign, limit: 100), limit: 100, now: 0).events
            #expect(got.map(\.id) == expected.map(\.id), "lines \(lines) of \(campaign ?? "all")")
        }
        // Retention deleted the rows up to a place and the one after it: a client resuming there is told.
        try held.exec("DELETE FROM cluster_events WHERE id <= \(all[1].id)")
        #expect(try a.clusterLogPruned(after: all[0].id) == all[2].id)
        #expect(try a.clusterLogPruned(after: all[1].id) == nil, "the next id is kept: nothing missed")
        #expect(try a.clusterLogPruned(after: all[2].id) == nil, "a kept place")
    }
}
