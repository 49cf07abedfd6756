import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// Issue 17's receipt semantics in the store: expired receipts, intermediate order, the parts of a multi-part
/// message, late send answers and `sent_at`.
@Suite struct ReceiptPartsTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    func loaded(_ dir: TempDir, segments: Int = 1, count: Int = 1) throws -> (any MessageStore, [OutgoingMessage]) {
        let store = try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
        try store.createCampaign(submission(), startAt: ISOTime.parse("2026-11-24T00:00:00Z")!, deadlineAt: ISOTime.parse("2026-11-30T00:00:00Z")!)
        let rows: [IngestRow] = (0..<count).map {
            .accepted(phone: "+8491234567\($0)", carrier: "k", text: "Hi \($0)", encoding: .gsm7, segments: segments, source: "s.csv", line: $0 + 2,
                      raw: "+8491234567\($0)")
        }
        _ = try store.ingest(campaign: "c1", rows: rows)
        try store.commitCampaign("c1")
        _ = try store.advanceCampaigns(now: clock.now())
        return (store, try store.claim(campaign: "c1", carrier: "k", limit: count, now: clock.now()))
    }

    func row(_ store: any MessageStore, _ id: Int64) throws -> (state: MessageState, detail: String?, sentAt: Int64?, gatewayID: String?) {
        try messageRow(store, id)
    }

    func receipts(_ dir: TempDir) -> [String] {
        logLines(dir).filter { $0["event"] as? String == "receipt" }.map { "\($0["status"] as? String ?? "") \($0["detail"] as? String ?? "")" }
    }

    @Test(arguments: StoreKind.all) func anExpiredReceiptEndsTheMessageExpiredWithTheNetworkAsTheReason(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let (store, m) = try loaded(dir)
        defer { store.close() }
        try store.record([SendOutcome(m[0], result: .accepted(gatewayID: nil, detail: "0: Accepted for delivery"))])
        clock.advance(byMillis: 3_000)
        #expect(try store.apply([ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .expired, gatewayID: "0a1b2c3d", detail: "EXPIRED err 000")])
            == [.applied])
        let r = try row(store, m[0].id)
        #expect(r.state == .expired)
        #expect(r.detail == "expired at the network (validity ended): EXPIRED err 000")
        // %F became the gateway id (it was read as a failure code before).
        #expect(r.gatewayID == "0a1b2c3d")
        #expect(try store.campaign("c1")?.carriers["k"]?["expired"] == 1)
        #expect(receipts(dir) == ["expired expired: expired at the network (validity ended): EXPIRED err 000"])
        #expect(store.receiptStats.withLock { $0.count } == 1)
        // The report groups by the reason: the receipt's words, no ids.
        #expect(try store.reportData(campaign: "c1").reasons["expired at the network (validity ended): EXPIRED err 000"] == 1)
    }

    /// The issue's Kannel sequence: 8 (ACK), then 4 (ENROUTE) after it, then the final report.
    @Test(arguments: StoreKind.all) func enrouteAfterTheSMSCsAcceptanceIsLogged(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let (store, m) = try loaded(dir)
        defer { store.close() }
        try store.record([SendOutcome(m[0], result: .accepted(gatewayID: nil, detail: "0: Accepted for delivery"))])
        let r = try store.apply([ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .smscAccepted, gatewayID: "5f3a9c01"),
                                 ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .buffered, gatewayID: "5f3a9c01", detail: "ENROUTE err 000"),
                                 ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .buffered, gatewayID: "5f3a9c01", detail: "ENROUTE err 000"),
                                 ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .delivered, gatewayID: "5f3a9c01", detail: "DELIVRD err 000")])
        #expect(r == [.applied, .applied, .duplicate, .applied])
        #expect(receipts(dir) == ["sent smsc-accepted", "sent buffered: ENROUTE err 000", "delivered delivered: DELIVRD err 000"])
        #expect(try row(store, m[0].id).gatewayID == "5f3a9c01")
    }

    /// "0: Accepted for delivery" arriving after the failure receipt replaced its reason.
    @Test(arguments: StoreKind.all) func aLateSendAnswerKeepsTheFinalReasonAndSentAtIsAlwaysSet(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let (store, m) = try loaded(dir, count: 2)
        defer { store.close() }
        let t0 = clock.now()
        clock.advance(byMillis: 500)
        // Both receipts overtake the send answers.
        #expect(try store.apply([ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .undelivered, gatewayID: "aa", detail: "UNDELIV err 001"),
                                 ReceiptUpdate(carrier: "k", messageID: m[1].id, status: .smscAccepted, gatewayID: "bb")]) == [.applied, .applied])
        #expect(try row(store, m[0].id).sentAt == t0 + 500)
        #expect(try row(store, m[1].id).sentAt == t0 + 500)
        clock.advance(byMillis: 500)
        try store.record([SendOutcome(m[0], result: .accepted(gatewayID: nil, detail: "0: Accepted for delivery")),
                          SendOutcome(m[1], result: .accepted(gatewayID: nil, detail: "0: Accepted for delivery"))])
        let failed = try row(store, m[0].id)
        #expect(failed.state == .failed && failed.detail == "UNDELIV err 001")
        // The receipt's time stays: the answer came later.
        #expect(failed.sentAt == t0 + 500)
        let sent = try row(store, m[1].id)
        #expect(sent.state == .sent && sent.sentAt == t0 + 500)
        // The latency counts the message whose final receipt came before any answer.
        #expect(store.receiptStats.withLock { $0.count } == 1)
    }

    /// A failure report without the gateway's own words (Kannel's 2 from an HTTP SMSC) replaces the answer's text.
    @Test(arguments: StoreKind.all) func aFailureWithoutWordsStillReplacesTheAnswersText(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let (store, m) = try loaded(dir, count: 2)
        defer { store.close() }
        try store.record(m.map { SendOutcome($0, result: .accepted(gatewayID: nil, detail: "0: Accepted for delivery")) })
        _ = try store.apply([ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .undelivered),
                             ReceiptUpdate(carrier: "k", messageID: m[1].id, status: .expired)])
        #expect(try row(store, m[0].id).detail == "undelivered")
        #expect(try row(store, m[1].id).detail == "expired at the network (validity ended)")
    }

    @Test(arguments: StoreKind.all) func aLateAcceptanceSetsSentAtWhenNothingDid(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let (store, m) = try loaded(dir)
        defer { store.close() }
        // The send failed for good (answer), then a late acceptance of the same attempt is logged; sent_at follows it.
        try store.record([SendOutcome(m[0], result: .failed(detail: "HTTP 400: bad"))])
        #expect(try row(store, m[0].id).sentAt == nil)
        try store.record([SendOutcome(id: m[0].id, result: .accepted(gatewayID: "g1", detail: "0: Accepted for delivery"))])
        let r = try row(store, m[0].id)
        #expect(r.state == .failed && r.detail == "HTTP 400: bad" && r.sentAt == clock.now())
    }

    /// Kannel over SMPP: each part is its own submit with its own SMSC id in %F, and its own receipts.
    @Test(arguments: StoreKind.all) func aMultiPartMessageIsDeliveredWhenEveryPartIs(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let (store, m) = try loaded(dir, segments: 3)
        defer { store.close() }
        let id = m[0].id
        try store.record([SendOutcome(m[0], result: .accepted(gatewayID: nil, detail: "0: Accepted for delivery"))])
        func r(_ s: ReceiptStatus, _ part: String, _ d: String? = nil) -> ReceiptUpdate { ReceiptUpdate(carrier: "k", messageID: id, status: s, gatewayID: part, detail: d) }
        #expect(try store.apply([r(.smscAccepted, "p3"), r(.buffered, "p1", "ENROUTE err 000"), r(.buffered, "p2", "ENROUTE err 000"),
                                 r(.delivered, "p1", "DELIVRD err 000"), r(.delivered, "p1", "DELIVRD err 000"), r(.delivered, "p2", "DELIVRD err 000")])
            == [.applied, .applied, .applied, .applied, .duplicate, .applied])
        #expect(try row(store, id).state == .sent)
        // A part that contradicts its own final report changes nothing (logged).
        #expect(try store.apply([r(.undelivered, "p1", "UNDELIV err 001")]) == [.applied])
        #expect(try row(store, id).state == .sent)
        #expect(try store.apply([r(.delivered, "p3", "DELIVRD err 000")]) == [.applied])
        #expect(try row(store, id).state == .delivered)
        let lines = receipts(dir)
        #expect(lines.last == "delivered delivered: DELIVRD err 000 (a part of 3)")
        #expect(lines.filter { $0.hasPrefix("sent delivered") }.count == 2)
        #expect(lines.contains("sent undelivered: UNDELIV err 001"))
        // The part's id is in the log line, not in the reason.
        #expect(logLines(dir).filter { $0["event"] as? String == "receipt" }.compactMap { $0["gateway_id"] as? String }.suffix(4) == ["p1", "p2", "p1", "p3"])
    }

    @Test(arguments: StoreKind.all) func aFailedOrExpiredPartEndsTheMessageAtOnce(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let (store, m) = try loaded(dir, segments: 2, count: 3)
        defer { store.close() }
        try store.record(m.map { SendOutcome($0, result: .accepted(gatewayID: nil, detail: nil)) })
        #expect(try store.apply([ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .buffered, gatewayID: "a2", detail: "ENROUTE err 000"),
                                 ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .delivered, gatewayID: "a1", detail: "DELIVRD err 000"),
                                 ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .undelivered, gatewayID: "a2", detail: "UNDELIV err 001"),
                                 ReceiptUpdate(carrier: "k", messageID: m[1].id, status: .smscAccepted, gatewayID: "b2"),
                                 ReceiptUpdate(carrier: "k", messageID: m[1].id, status: .expired, gatewayID: "b1", detail: "EXPIRED err 000"),
                                 // A part reporting after the message ended is logged, and changes nothing.
                                 ReceiptUpdate(carrier: "k", messageID: m[1].id, status: .delivered, gatewayID: "b2", detail: "DELIVRD err 000"),
                                 // One id only: the gateway reports once for the whole message.
                                 ReceiptUpdate(carrier: "k", messageID: m[2].id, status: .undelivered, gatewayID: "c", detail: "UNDELIV err 001")])
            == [.applied, .applied, .applied, .applied, .applied, .applied, .applied])
        let failed = try row(store, m[0].id)
        #expect(failed.state == .failed && failed.detail == "UNDELIV err 001 (a part of 2)")
        let expired = try row(store, m[1].id)
        #expect(expired.state == .expired && expired.detail == "expired at the network (validity ended): EXPIRED err 000 (a part of 2)")
        let whole = try row(store, m[2].id)
        #expect(whole.state == .failed && whole.detail == "UNDELIV err 001")
        #expect(try store.campaign("c1")?.carriers["k"]?["expired"] == 1)
    }

    /// Kannel's fake SMSC (and any gateway that reports once per message under an id of its own): the parts share
    /// one id, one final report ends the message.
    @Test(arguments: StoreKind.all) func oneIDForAllPartsIsOneReportForTheMessage(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let (store, m) = try loaded(dir, segments: 2)
        defer { store.close() }
        try store.record([SendOutcome(m[0], result: .accepted(gatewayID: nil, detail: "0: Accepted for delivery"))])
        let u = "3f1c2a7e-8d4b-4c1e-9a53-0b6f1d2e4c5a"
        #expect(try store.apply([ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .smscAccepted, gatewayID: u),
                                 ReceiptUpdate(carrier: "k", messageID: m[0].id, status: .delivered, gatewayID: u)]) == [.applied, .applied])
        #expect(try row(store, m[0].id).state == .delivered)
        #expect(receipts(dir) == ["sent smsc-accepted", "delivered delivered"])
    }

    /// Part ids from the send answer (`partIDs`): a receipt keyed by any of them finds the message.
    @Test(arguments: StoreKind.all) func partIDsFromTheAnswerFindTheMessage(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let (store, m) = try loaded(dir, segments: 2)
        defer { store.close() }
        // One part's receipt overtakes the answer.
        #expect(try store.apply([ReceiptUpdate(carrier: "k", gatewayKey: "P-2", status: .delivered, detail: "D")]) == [.pending])
        try store.record([SendOutcome(m[0], result: .accepted(gatewayID: "P-1", detail: nil, partIDs: ["P-1", "P-2"]))])
        #expect(try row(store, m[0].id).state == .sent)
        #expect(try store.apply([ReceiptUpdate(carrier: "k", gatewayKey: "P-2", status: .delivered, detail: "D")]) == [.duplicate])
        #expect(try store.apply([ReceiptUpdate(carrier: "k", gatewayKey: "P-1", status: .delivered, detail: "D")]) == [.applied])
        #expect(try row(store, m[0].id).state == .delivered)
    }
}
