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
}
