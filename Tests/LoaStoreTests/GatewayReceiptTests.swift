import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// Receipts keyed by the gateway's id (batch APIs), early receipts, failover moves and receipt latency.
@Suite struct GatewayReceiptTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    func loaded(_ dir: TempDir, rows: [IngestRow]) throws -> any MessageStore {
        let store = try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
        try store.createCampaign(submission(), startAt: ISOTime.parse("2026-11-24T00:00:00Z")!, deadlineAt: ISOTime.parse("2026-11-30T00:00:00Z")!)
        _ = try store.ingest(campaign: "c1", rows: rows)
        try store.commitCampaign("c1")
        _ = try store.advanceCampaigns(now: clock.now())
        return store
    }

    @Test(arguments: StoreKind.all) func receiptByGatewayIDFindsItsMessage(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try loaded(dir, rows: [accepted("+84912345678", line: 2), accepted("+84912345679", line: 3)])
        defer { store.close() }
        let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now())
        try store.record(claimed.enumerated().map { SendOutcome(id: $0.element.id, result: .accepted(gatewayID: "g-\($0.offset)", detail: nil)) })
        clock.advance(byMillis: 7_000)
        let r = try store.apply([ReceiptUpdate(carrier: "k", gatewayKey: "g-1", status: .delivered, detail: "DELIVRD")])
        #expect(r == [.applied])
        let states = try store.messageStates(campaign: "c1")
        #expect(states.map(\.state) == [.sent, .delivered])
        // The same gateway id through another carrier is not this message.
        #expect(try store.apply([ReceiptUpdate(carrier: "other", gatewayKey: "g-0", status: .delivered)]) == [.pending])
        #expect(try store.messageStates(campaign: "c1")[0].state == .sent)
        // Per carrier: the receipt's latency and the final state it gave.
        let stats = store.receiptStats.withLock { $0 }
        #expect(stats.latency("k").count == 1 && stats.latency("k").sumSeconds == 7 && stats.latency.count == 1)
        #expect(stats.settled == ["k": ["delivered": 1]])
    }

    /// Every distinct receipt is an event, whatever its order: only an exact repeat (the same status for the same
    /// message) is a duplicate. A buffered (ENROUTE) report after the SMSC's acceptance is logged; a final receipt
    /// that contradicts the final state is logged and changes nothing.
    @Test(arguments: StoreKind.all) func intermediateReceiptsAreEventsInAnyOrder(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try loaded(dir, rows: [accepted("+84912345678", line: 2)])
        defer { store.close() }
        let m = try store.claim(campaign: "c1", carrier: "k", limit: 1, now: clock.now())[0]
        try store.record([SendOutcome(id: m.id, result: .accepted(gatewayID: "g-0", detail: nil))])
        let results = try store.apply([.smscAccepted, .smscAccepted, .buffered, .buffered, .delivered, .undelivered, .delivered].map {
            ReceiptUpdate(carrier: "k", messageID: m.id, status: $0)
        })
        #expect(results == [.applied, .duplicate, .applied, .duplicate, .applied, .applied, .duplicate])
        #expect(try store.messageStates(campaign: "c1").map(\.state) == [.delivered])
        let receipts = logLines(dir).filter { $0["event"] as? String == "receipt" }.map { "\($0["detail"] as? String ?? "")/\($0["status"] as? String ?? "")" }
        #expect(receipts == ["smsc-accepted/sent", "buffered/sent", "delivered/delivered", "undelivered/delivered"])
    }

    @Test(arguments: StoreKind.all) func receiptThatOvertakesTheSendAnswerIsAppliedWhenTheAnswerIsRecorded(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try loaded(dir, rows: [accepted("+84912345678", line: 2)])
        defer { store.close() }
        let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now())
        // The gateway's receipts (intermediate and final, out of order) arrive before its send answer is recorded.
        #expect(try store.apply([ReceiptUpdate(carrier: "k", gatewayKey: "g-9", status: .undelivered, detail: "UNDELIV")]) == [.pending])
        #expect(try store.apply([ReceiptUpdate(carrier: "k", gatewayKey: "g-9", status: .smscAccepted)]) == [.pending])
        #expect(try store.messageStates(campaign: "c1")[0].state == .sending)
        try store.record([SendOutcome(id: claimed[0].id, result: .accepted(gatewayID: "g-9", detail: nil))])
        #expect(try store.messageStates(campaign: "c1")[0].state == .failed)
        let events = logLines(dir).filter { ($0["message"] as? Int) == Int(claimed[0].id) }.map { "\($0["event"]!)/\($0["status"]!)" }
        #expect(events == ["sending/sending", "accepted/sent", "receipt/sent", "receipt/failed"])
        // Applied once: a repeat of the final receipt changes nothing.
        #expect(try store.apply([ReceiptUpdate(carrier: "k", gatewayKey: "g-9", status: .undelivered)]) == [.duplicate])
    }

    @Test(arguments: StoreKind.all) func rerouteMovesOnlyQueuedMessagesAndTheirCounts(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try loaded(dir, rows: (0..<5).map { accepted("+8491234560\($0)", line: $0 + 2) })
        defer { store.close() }
        let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 2, now: clock.now())
        #expect(claimed.count == 2)
        #expect(try store.reroute(campaign: "c1", from: "k", to: "b", limit: 10, reason: "carrier k is down") == 3)
        let rec = try #require(try store.campaign("c1"))
        #expect(rec.carriers["k"]?["queued"] ?? 0 == 0 && rec.carriers["k"]?["sending"] == 2)
        #expect(rec.carriers["b"]?["queued"] == 3)
        #expect(try store.claim(campaign: "c1", carrier: "b", limit: 10, now: clock.now()).count == 3)
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now()).isEmpty)
        #expect(logLines(dir).filter { $0["event"] as? String == "rerouted" }.count == 3)
        #expect(try store.activeWork().first?.carriers ?? [] == [])
    }
}
