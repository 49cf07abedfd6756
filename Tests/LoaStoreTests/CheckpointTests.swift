import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// The write-ahead log is copied back by the checkpoint thread, and by the writer itself once the log passes
/// its inline size: either way it never grows past that size plus one transaction, and nothing is lost.
@Suite struct CheckpointTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)
    /// 60 transactions of 200 rows of about 1 KiB: about 3,000 pages of log in all.
    let transactions = 60, rowsPerTransaction = 200

    func fill(_ store: Store) throws {
        for t in 0..<transactions {
            try store.rawInsert((0..<rowsPerTransaction).map { ("+849\(t)\($0)", String(repeating: "x", count: 1000)) }, bare: true)
        }
    }

    func walBytes(_ dir: TempDir) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: dir.path + "/loa.db-wal"))?[.size] as? Int) ?? 0
    }

    func rows(_ dir: TempDir) throws -> Int64 {
        let store = try Store(directory: dir.path, log: nil, clock: clock)
        defer { store.close() }
        return try store.write { ctx in
            var n: Int64 = 0
            try ctx.statement("SELECT COUNT(*) FROM bench_bare").query { n = $0.int(0) }
            return n
        }
    }

    @Test func theCheckpointThreadKeepsTheLogSmall() throws {
        let dir = TempDir()
        let store = try Store(directory: dir.path, log: nil, clock: clock, maskNumbers: false, checkpointWakeAt: 200, checkpointInlineAt: 1_000)
        try fill(store)
        let deadline = Date().addingTimeInterval(10)
        while store.checkpointer.runs == 0 && Date() < deadline { usleep(1000) }
        #expect(store.checkpointer.runs > 0)
        // Without checkpoints the log would hold every page written (more than 12 MB).
        #expect(walBytes(dir) < (1_000 + 100) * 4_120)
        store.close()
        #expect(try rows(dir) == Int64(transactions * rowsPerTransaction))
    }

    @Test func theWriterCheckpointsItselfWhenTheThreadIsNeverWoken() throws {
        let dir = TempDir()
        let store = try Store(directory: dir.path, log: nil, clock: clock, maskNumbers: false, checkpointWakeAt: .max, checkpointInlineAt: 500)
        try fill(store)
        #expect(store.checkpointer.runs == 0)
        #expect(walBytes(dir) < (500 + 100) * 4_120)
        store.close()
        #expect(try rows(dir) == Int64(transactions * rowsPerTransaction))
    }
}
