import Foundation
import LoaCore
import Synchronization
import Testing
@testable import LoaStore

/// What a restart reads back for the hand-off windows: `sent` messages without a pass-on receipt, streamed in
/// batches and without those already taken as lost (at 10M recipients the array form was 10M tuples).
@Suite struct HandoffStoreTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    @Test func handedOverNotPassedOnStreamsRecentOnesInBatches() throws {
        let dir = TempDir()
        let store = try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
        defer { store.close() }
        try store.createCampaign(submission(), startAt: ISOTime.parse("2026-11-24T00:00:00Z")!, deadlineAt: ISOTime.parse("2026-11-30T00:00:00Z")!)
        _ = try store.ingest(campaign: "c1", rows: (0..<7).map { accepted("+8491234560\($0)", line: $0 + 2) })
        try store.commitCampaign("c1")
        _ = try store.advanceCampaigns(now: clock.now())
        let early = try store.claim(campaign: "c1", carrier: "k", limit: 2, now: clock.now())
        try store.record(early.map { SendOutcome(id: $0.id, result: .accepted(gatewayID: "g\($0.id)", detail: nil)) })
        let handedLater = clock.now() + 60_000
        clock.advance(byMillis: 60_000)
        let late = try store.claim(campaign: "c1", carrier: "k", limit: 5, now: clock.now())
        try store.record(late.map { SendOutcome(id: $0.id, result: .accepted(gatewayID: "g\($0.id)", detail: nil)) })
        // One of the late ones has its pass-on receipt: not outstanding any more.
        _ = try store.apply([ReceiptUpdate(carrier: "k", messageID: late[0].id, status: .smscAccepted)])

        let batches = Mutex<[[Int64]]>([])
        try #require(store as? Store).handedOverNotPassedOn(carriers: ["k"], since: handedLater, batchSize: 2) { rows in
            batches.withLock { $0.append(rows.map(\.id)) }
        }
        let seen = batches.withLock { $0 }
        #expect(seen.map(\.count) == [2, 2], "batches \(seen)")
        #expect(seen.flatMap { $0 }.sorted() == late.dropFirst().map(\.id).sorted())
        // The protocol's form, every time: all six, the two early ones too; another carrier's: none.
        let all = Mutex<[Int64]>([])
        try store.handedOverNotPassedOn(carriers: ["k"], since: 0) { rows in all.withLock { $0 += rows.map(\.id) } }
        #expect(all.withLock { $0 }.sorted() == (early + late.dropFirst()).map(\.id).sorted())
        try store.handedOverNotPassedOn(carriers: ["other"], since: 0) { _ in Issue.record("another carrier's rows") }
    }
}
