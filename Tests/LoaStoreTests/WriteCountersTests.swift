import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// The store's count of rows written and transactions committed: what the benchmarks divide by the recipients sent
/// to get durable writes per recipient (issue 18).
@Suite struct WriteCountersTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    @Test func rowsWrittenGrowWithWritesAndNotWithReads() throws {
        let dir = TempDir()
        let store = try Store(directory: dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
        defer { store.close() }
        let rows0 = store.rowsWritten, tx0 = store.transactionsCommitted
        try store.createCampaign(submission(), startAt: ISOTime.parse("2026-11-24T00:00:00Z")!, deadlineAt: ISOTime.parse("2026-11-30T00:00:00Z")!)
        _ = try store.ingest(campaign: "c1", rows: (0..<10).map { accepted("+8491234560\($0)", line: $0 + 2) })
        try store.commitCampaign("c1")
        _ = try store.advanceCampaigns(now: clock.now())
        // Ten recipients are ten rows at least (the campaign and its counters are more).
        let afterIngest = store.rowsWritten
        #expect(afterIngest - rows0 >= 11, "\(afterIngest - rows0) rows for a campaign of 10")
        #expect(store.transactionsCommitted - tx0 >= 4)

        // A read is a transaction that writes nothing.
        let tx1 = store.transactionsCommitted
        _ = try store.campaign("c1")
        #expect(store.rowsWritten == afterIngest)
        #expect(store.transactionsCommitted == tx1 + 1)

        // Sending writes: the claim is durable before any request leaves.
        let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now())
        #expect(claimed.count == 10)
        let afterClaim = store.rowsWritten
        #expect(afterClaim > afterIngest)
        try store.record(claimed.map { SendOutcome($0, result: .accepted(gatewayID: "g\($0.id)", detail: nil)) })
        #expect(store.rowsWritten > afterClaim)
    }
}
