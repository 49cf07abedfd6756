import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// A segment's batch goes into the store whole (PostgreSQL: a few statements over arrays, not one INSERT per row) with
/// the guarantees of the row-by-row load: the first row of a number is kept and later ones, in the same batch or a
/// later one, are duplicates; rejects and suppressed numbers are rows in file order with their delivery-log lines;
/// counters, reasons and the preview count every row; texts with quotes, backslashes and braces come back whole.
@Suite struct IngestBatchTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    func open(_ dir: TempDir) throws -> any MessageStore {
        try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
    }

    func row(_ phone: String, line: Int, text: String? = nil, source: String = "s.csv") -> IngestRow {
        .accepted(phone: phone, carrier: "k", text: text ?? "Hi \(line)", encoding: .gsm7, segments: 1, source: source, line: line, raw: phone)
    }

    @Test(arguments: StoreKind.all) func aBatchKeepsTheFirstOfEachNumberInFileOrder(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        _ = try store.addOptOuts(["+84912345001"], source: "test")
        try store.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        _ = try store.addExclusions(campaign: "c1", phones: ["+84912345002"])
        let odd = "Ch\u{e0}o \"b\u{1ea1}n\" \\ {a,b} NULL, 'x'"
        let first: [IngestRow] = [
            row("+84912345010", line: 2),
            .rejected(raw: "a\"b\\c,{}", code: "invalid-characters", message: "letters", source: "s.csv", line: 3),
            row("+84912345010", line: 4),
            row("+84912345001", line: 5),
            row("+84912345002", line: 6),
            row("+84912345011", line: 7, text: odd),
            row("+84912345001", line: 8),
            .rejected(raw: "123", code: "too-short", message: "too short", source: "s.csv", line: 9),
        ]
        let second = [row("+84912345011", line: 2, source: "t.csv"), row("+84912345012", line: 3, source: "t.csv")]
        let c1 = try store.ingest(campaign: "c1", rows: first)
        #expect(c1.rows == 8 && c1.accepted == 2 && c1.suppressed == 2 && c1.duplicates == 2 && c1.rejected == 2)
        let c2 = try store.ingest(campaign: "c1", rows: second)
        #expect(c2.rows == 2 && c2.accepted == 1 && c2.duplicates == 1 && c2.suppressed == 0 && c2.rejected == 0)

        // The preview counted every row as the row-by-row load did.
        var expected = CampaignPreview()
        let duplicate: Set<Int> = [2, 6, 8]
        for (i, r) in (first + second).enumerated() {
            let phone: String? = if case .accepted(let p, _, _, _, _, _, _, _, _, _) = r { p } else { nil }
            let suppression: PreviewTotals.Suppression? = phone == "+84912345001" ? .init(rawValue: "opt-out")
                : phone == "+84912345002" ? .init(rawValue: "excluded") : nil
            expected.count(r, duplicate: duplicate.contains(i), suppression: suppression)
        }
        #expect(try store.preview(campaign: "c1") == expected)

        try store.commitCampaign("c1")
        _ = try store.advanceCampaigns(now: clock.now())
        let sent = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now())
        #expect(sent.map(\.phone) == ["+84912345010", "+84912345011", "+84912345012"])
        #expect(sent.map(\.text) == ["Hi 2", odd, "Hi 3"])
        let rec = try #require(try store.campaign("c1"))
        #expect(rec.reasons == ["opt-out": 1, "excluded": 1, "duplicate": 3, "invalid-characters": 1, "too-short": 1])
        #expect(rec.states["sending"] == 3 && rec.states["suppressed"] == 2 && rec.states["rejected"] == 2)

        // The rejects report: each row not sent, with its file, line and raw value as read.
        let rejects = try store.rejects(campaign: "c1").map(\.row)
        #expect(Set(rejects.map { "\($0.source):\($0.line) \($0.reason)" })
                == ["s.csv:3 invalid-characters", "s.csv:4 duplicate", "s.csv:5 opt-out", "s.csv:6 excluded", "s.csv:8 duplicate", "s.csv:9 too-short",
                    "t.csv:2 duplicate"])
        #expect(rejects.first { $0.line == 3 }?.raw == "a\"b\\c,{}")
        #expect(rejects.first { $0.source == "t.csv" }?.detail == "the number +84912345011 is already in this campaign")

        // The delivery log: the load's lines in file order, each naming its own message.
        let log = logLines(dir).filter { $0["event"] as? String != "sending" }
        #expect(log.map { "\($0["event"]!) \(($0["detail"] as? String)?.prefix(8) ?? "")" }
                == ["rejected s.csv:3:", "suppressed s.csv:5:", "suppressed s.csv:6:", "rejected s.csv:9:"])
        let ids = log.compactMap { ($0["message"] as? NSNumber)?.int64Value }
        #expect(ids.count == 4 && ids == ids.sorted() && Set(ids).count == 4 && !ids.contains(0) && !ids.contains { sent.map(\.id).contains($0) })
    }

    /// A committed load is analyzed at once, so the first claims are planned on the rows just loaded: without it the
    /// table's statistics say it is empty until autovacuum comes round.
    @Test(.enabled(if: StoreKind.all.contains(.postgresql))) func aCommittedLoadIsAnalyzed() throws {
        let dir = TempDir(.postgresql)
        let store = try open(dir)
        defer { store.close() }
        try store.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        _ = try store.ingest(campaign: "c1", rows: (0..<300).map { row("+849123\(String(format: "%05d", $0))", line: $0 + 2) })
        let probe = try PGConnection(settings: testPostgresSettings(schema: testSchema(dir.path), node: "probe"))
        func stats() throws -> (analyzed: Int64, tuples: Int64) {
            var out: (Int64, Int64) = (-1, -1)
            try probe.prepare("""
                SELECT (SELECT COALESCE(analyze_count, 0) FROM pg_stat_user_tables WHERE relid = c.oid) AS analyzed, c.reltuples::bigint AS tuples
                FROM pg_class c WHERE c.oid = 'messages'::regclass
                """).query { out = ($0.int("analyzed"), $0.int("tuples")) }
            return out
        }
        #expect(try stats().tuples != 300)
        try store.commitCampaign("c1")
        let after = try stats()
        #expect(after.analyzed >= 1 && after.tuples == 300, "\(after)")
    }
}
