import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// The release of claims whose COMMIT acknowledgement was lost (``PostgresStore/releaseUnsentClaims(epoch:holding:)``),
/// by its rules: only the messages of unsure claims, only those still `sending` under this node, never one the
/// dispatcher holds, and only while this node holds its lease at the epoch given. Skipped without `LOA_PG_URL`.
@Suite(.enabled(if: StoreKind.all.contains(.postgresql))) struct PostgresReleaseTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-12-02T01:00:00Z")!)

    func open(_ dir: TempDir, schema: String, node: String) throws -> PostgresStore {
        let settings = try testPostgresSettings(schema: schema, node: node)
        return try PostgresStore(settings: settings, directory: dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
    }

    @Test(.timeLimit(.minutes(1))) func onlyUnsureClaimsNotHeldAreRequeuedAndOnlyUnderTheLeaseHeld() throws {
        let base = TempDir(.postgresql)
        let schema = testSchema(base.path)
        let dirA = TempDir(.postgresql), dirB = TempDir(.postgresql)
        let a = try open(dirA, schema: schema, node: "a"), b = try open(dirB, schema: schema, node: "b")
        defer { a.close(); b.close() }
        try a.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        _ = try a.ingest(campaign: "c1", rows: (0..<12).map { accepted("+849123\(String(format: "%05d", $0))", line: $0 + 2) })
        try a.commitCampaign("c1")
        _ = try a.advanceCampaigns(now: clock.now())
        let mine = try a.claim(campaign: "c1", carrier: "k", limit: 6, now: clock.now()).map(\.id)
        let theirs = try b.claim(campaign: "c1", carrier: "k", limit: 3, now: clock.now()).map(\.id)
        #expect(mine.count == 6 && theirs.count == 3)
        // Nothing unsure: nothing looked at, whatever is `sending`.
        #expect(try a.releaseUnsentClaims(epoch: a.cluster.epoch) { [] } == 0)
        // Mine 0-3 unsure (mine 0 held by the dispatcher), mine 4-5 answered elsewhere (not unsure), b's unsure here by mistake.
        a.unsureClaims.withLock { $0 = Set(mine.prefix(4) + theirs) }
        // Another epoch than the one held: the fence refuses, nothing moves.
        #expect(try a.releaseUnsentClaims(epoch: a.cluster.epoch + 1) { [] } == nil)
        #expect(try a.campaign("c1")?.states == ["sending": 9, "queued": 3])
        a.unsureClaims.withLock { $0 = Set(mine.prefix(4) + theirs) }
        let held = mine[0]
        #expect(try a.releaseUnsentClaims(epoch: a.cluster.epoch) { [held] } == 3)
        let states = Dictionary(uniqueKeysWithValues: try a.messageStates(campaign: "c1").enumerated().map { ($0.offset, $0.element) })
        #expect(try a.campaign("c1")?.states == ["sending": 6, "queued": 6], "\(states)")
        // Released: queued with the attempt given back, a `requeued` line each saying why.
        let lines = logLines(dirA).filter { $0["event"] as? String == "requeued" }
        #expect(lines.compactMap { ($0["message"] as? Int).map(Int64.init) }.sorted() == Array(mine[1..<4]))
        #expect(lines.allSatisfy { ($0["detail"] as? String ?? "").contains("never sent") && $0["attempt"] as? Int == 0 })
        #expect(a.unsureClaims.withLock { $0.isEmpty }, "the unsure claims were not forgotten once looked at")
        // They are claimed again as any queued message.
        #expect(try a.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now()).count == 6)
    }
}
