import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// The store's side of receipts by polling and of aggregate callbacks (issue 17).
@Suite struct PollingStoreTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    func sentStore(_ dir: TempDir, ids: [String?]) throws -> (any MessageStore, [Int64]) {
        let store = try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
        try store.createCampaign(submission(), startAt: ISOTime.parse("2026-11-24T00:00:00Z")!, deadlineAt: ISOTime.parse("2026-11-30T00:00:00Z")!)
        _ = try store.ingest(campaign: "c1", rows: ids.indices.map { accepted("+8491234567\($0)", line: $0 + 2) })
        try store.commitCampaign("c1")
        _ = try store.advanceCampaigns(now: clock.now())
        try store.preparePolling(enabled: true)
        let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 100, now: clock.now())
        try store.record(zip(claimed, ids).map { SendOutcome(id: $0.id, result: .accepted(gatewayID: $1, detail: nil)) })
        return (store, claimed.map(\.id))
    }

    /// Due: sent with a gateway id, old enough, young enough, not polled in the interval; the longest-unpolled first.
    @Test(arguments: StoreKind.all) func pollCandidatesAreTheDueSentMessagesLongestUnpolledFirst(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let (store, ids) = try sentStore(dir, ids: ["R1:1", "R1:2", nil, "g-4", "g-5"])
        defer { store.close() }
        let sentAt = clock.now()
        func due(_ limit: Int = 10) throws -> [Int64] {
            try store.pollCandidates(carrier: "k", sentFrom: clock.now() - 3_600_000, sentTo: clock.now() - 30_000,
                                     polledBefore: clock.now() - 60_000, limit: limit).map(\.id)
        }
        #expect(try due() == [])  // not 30 s old yet
        clock.advance(byMillis: 30_000)
        #expect(try due() == [ids[0], ids[1], ids[3], ids[4]])  // the one without a gateway id is never polled
        #expect(try due(2) == [ids[0], ids[1]])
        try store.markPolled([ids[0], ids[1]])
        #expect(try due() == [ids[3], ids[4]])
        // A final receipt ends the polling of a message.
        _ = try store.apply([ReceiptUpdate(carrier: "k", messageID: ids[3], status: .delivered)])
        clock.advance(byMillis: 60_000)
        #expect(try due() == [ids[4], ids[0], ids[1]])
        // Another carrier's messages are not this carrier's.
        #expect(try store.pollCandidates(carrier: "x", sentFrom: 0, sentTo: clock.now(), polledBefore: clock.now(), limit: 10).isEmpty)
        // Past max age, not polled any more.
        clock.set(sentAt + 3_600_001)
        #expect(try due() == [])
    }

    @Test(arguments: StoreKind.all) func anAggregateCallbackIsOneLogLineAndNamesTheRequestsSentMessages(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let (store, ids) = try sentStore(dir, ids: ["R1:84912345670", "R1:84912345671", "R10:84912345672", "R1"])
        defer { store.close() }
        _ = try store.apply([ReceiptUpdate(carrier: "k", messageID: ids[1], status: .delivered)])
        let rows = try store.recordRequestReceipt(carrier: "k", requestID: "R1", counts: [("SendSuccess", "2"), ("SendFailed", "1")])
        #expect(rows.map(\.id) == [ids[0], ids[3]])  // not R10's, not the delivered one
        let line = try #require(logLines(dir).last)
        #expect(line["event"] as? String == "request-receipt" && line["message"] as? Int == 0 && line["campaign"] as? String == "c1")
        #expect(line["gateway_id"] as? String == "R1" && line["detail"] as? String == "SendSuccess=2 SendFailed=1; 3 messages, 2 sent")
        #expect(line["recipient"] == nil || line["recipient"] is NSNull)
        // A request Loa does not know is logged all the same, with no campaign.
        #expect(try store.recordRequestReceipt(carrier: "k", requestID: "R9", counts: []).isEmpty)
        #expect(logLines(dir).last?["detail"] as? String == "0 messages, 0 sent")
    }
}
