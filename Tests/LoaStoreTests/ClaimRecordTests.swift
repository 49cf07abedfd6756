import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// Claims of fresh messages are one `claims` row, not a write per message; the message rows are written once, by
/// the outcome. What must hold with that: a crash leaves exactly the unsettled ones `unknown`, nothing that takes
/// queued rows (cancel, expiry, failover, opt-out replies, the next claim) takes one in flight, reads show them
/// `sending`, and retries come back exactly once.
@Suite struct ClaimRecordTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    func open(_ dir: TempDir) throws -> Store {
        try Store(directory: dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
    }

    /// A running campaign `id` with the numbers `+849123456NN` for `range`.
    func running(_ store: Store, _ range: ClosedRange<Int>, id: String = "c1", carrier: String = "k", deadline: UnixMillis = .max) throws {
        try store.createCampaign(submission(id), startAt: 0, deadlineAt: deadline)
        _ = try store.ingest(campaign: id, rows: range.map { accepted("+849123456\(String(format: "%02d", $0))", line: $0 + 1, carrier: carrier) })
        try store.commitCampaign(id)
        _ = try store.advanceCampaigns(now: clock.now())
    }

    /// The rows as stored (state, attempts, updated_at by id), read on a connection of its own.
    func rows(_ dir: TempDir) throws -> [Int64: (state: Int, attempts: Int, updatedAt: Int64)] {
        let db = try Connection(path: dir.path + "/loa.db", readOnly: true)
        var out: [Int64: (state: Int, attempts: Int, updatedAt: Int64)] = [:]
        try db.prepare("SELECT id, state, attempts, updated_at FROM messages").query { out[$0.int(0)] = (Int($0.int(1)), Int($0.int(2)), $0.int(3)) }
        return out
    }

    func claimRecords(_ dir: TempDir) throws -> [String] {
        let db = try Connection(path: dir.path + "/loa.db", readOnly: true)
        var out: [String] = []
        try db.prepare("SELECT ids FROM claims ORDER BY id").query { out.append($0.text(0) ?? "") }
        return out
    }

    func states(_ store: Store, _ id: String = "c1") throws -> [String] {
        try store.messageStates(campaign: id).map { "\($0.state.name)/\($0.attempts)" }
    }

    @Test func aClaimWritesOneRecordAndNoMessageRow() throws {
        let dir = TempDir()
        let store = try open(dir)
        defer { store.close() }
        try running(store, 1...3)
        let before = try rows(dir)
        clock.advance(byMillis: 5_000)
        let writes = try store.totalChanges()
        let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now())
        #expect(claimed.map(\.attempt) == [1, 1, 1])
        // One claims row, the counters moved queued → sending (two rows), the log's last seq in `meta`: no message row.
        let claimWrites = try store.totalChanges() - writes
        #expect(claimWrites == 4)
        let after = try rows(dir)
        #expect(after.keys.sorted() == before.keys.sorted())
        for (id, row) in after { #expect(row.state == 0 && row.attempts == 0 && row.updatedAt == before[id]?.updatedAt) }
        #expect(try claimRecords(dir) == ["1-3"])
        // Reads show them as they are: in flight.
        #expect(try states(store) == ["sending/1", "sending/1", "sending/1"])
        #expect(try store.reportRows(campaign: "c1", after: 0, limit: 10).map(\.state) == ["sending", "sending", "sending"])
        #expect(try store.campaign("c1")?.states == ["sending": 3])
        #expect(try store.batchReadiness(campaign: "c1", carrier: "k", now: clock.now(), limit: 10).ready == 0)
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now()).isEmpty)
        // The outcome writes each row once; the record goes with the last of them.
        try store.record(claimed.map { SendOutcome($0, result: .accepted(gatewayID: "g\($0.id)", detail: nil)) })
        #expect(try rows(dir).values.map { "\($0.state)/\($0.attempts)" } == ["2/1", "2/1", "2/1"])
        #expect(try claimRecords(dir).isEmpty)
        #expect(try store.campaign("c1")?.states == ["sent": 3])
    }

    /// A stop with answers outstanding (a close without recording stands for a kill: the claim committed, the
    /// outcome never did): exactly the messages never settled become `unknown`, once, logged; those accepted,
    /// retried, requeued, failed, or settled by a receipt before their answer keep what they got.
    @Test func aCrashTurnsExactlyTheUnsettledOnesUnknown() throws {
        let dir = TempDir()
        do {
            let store = try open(dir)
            try running(store, 1...7)
            let m = try store.claim(campaign: "c1", carrier: "k", limit: 7, now: clock.now())
            #expect(m.count == 7)
            try store.record([SendOutcome(m[0], result: .accepted(gatewayID: "g1", detail: nil)),
                              SendOutcome(m[1], result: .retry(notBefore: clock.now() + 60_000, detail: "busy")),
                              SendOutcome(m[2], result: .requeue(notBefore: 0, detail: "unreachable")),
                              SendOutcome(m[3], result: .failed(detail: "no"))])
            #expect(try store.apply([ReceiptUpdate(carrier: "k", messageID: m[4].id, status: .delivered)]) == [.applied])
            store.close()  // m[4]'s answer, m[5]'s and m[6]'s never recorded
        }
        let store = try open(dir)
        defer { store.close() }
        #expect(store.recovery.unknownMessages == 2)
        #expect(try states(store) == ["sent/1", "queued/1", "queued/0", "failed/1", "delivered/1", "unknown/1", "unknown/1"])
        #expect(try claimRecords(dir).isEmpty)
        #expect(try store.campaign("c1")?.states == ["sent": 1, "queued": 2, "failed": 1, "delivered": 1, "unknown": 2])
        #expect(try store.campaign("c1")?.recoveredUnknown == 2)
        let unknown = logLines(dir).filter { $0["event"] as? String == "unknown" }
        #expect(unknown.compactMap { $0["message"] as? Int } == [6, 7])
        // The log ends where the store is: each message's last line names its state.
        var last: [Int: String] = [:]
        for line in logLines(dir) { if let id = line["message"] as? Int { last[id] = line["status"] as? String } }
        #expect((1...7).map { last[$0] ?? "" } == ["sent", "queued", "queued", "failed", "delivered", "unknown", "unknown"])
        // A second start finds nothing more.
        store.close()
        let again = try open(dir)
        defer { again.close() }
        #expect(again.recovery.unknownMessages == 0)
    }

    /// Cancel, expiry, failover and opt-out replies take queued messages: never one in flight (its answer
    /// decides it), whose row still reads queued.
    @Test func cancelExpiryRerouteAndOptOutLeaveMessagesInFlight() throws {
        let dir = TempDir()
        let store = try open(dir)
        defer { store.close() }
        try running(store, 1...5)
        let inFlight = try store.claim(campaign: "c1", carrier: "k", limit: 2, now: clock.now())
        #expect(inFlight.map(\.id) == [1, 2])
        #expect(try store.optOutNow("+84912345601", source: "reply") == 0)
        #expect(try store.optOutNow("+84912345603", source: "reply") == 1)
        #expect(try store.reroute(campaign: "c1", from: "k", to: "k2", limit: 10, reason: "down") == 2)
        #expect(try store.apply(.cancel, to: "c1", now: clock.now()) == .cancelled)
        _ = try store.advanceCampaigns(now: clock.now())
        #expect(try states(store) == ["sending/1", "sending/1", "suppressed/0", "cancelled/0", "cancelled/0"])
        try store.record(inFlight.map { SendOutcome($0, result: .accepted(gatewayID: "g\($0.id)", detail: nil)) })
        #expect(try states(store) == ["sent/1", "sent/1", "suppressed/0", "cancelled/0", "cancelled/0"])

        let deadline = clock.now() + 60_000
        try running(store, 11...13, id: "c2", deadline: deadline)
        let second = try store.claim(campaign: "c2", carrier: "k", limit: 1, now: clock.now())
        clock.set(deadline)
        _ = try store.advanceCampaigns(now: clock.now())
        #expect(try states(store, "c2") == ["sending/1", "expired/0", "expired/0"])
        #expect(try store.campaign("c2")?.state == .running)
        try store.record(second.map { SendOutcome($0, result: .accepted(gatewayID: "g\($0.id)", detail: nil)) })
        _ = try store.advanceCampaigns(now: clock.now())
        #expect(try states(store, "c2") == ["sent/1", "expired/0", "expired/0"])
        #expect(try store.campaign("c2")?.state == .expired)
    }

    /// After a restart the claim starts from the queue as stored: what was settled is not taken again, what was
    /// in flight is `unknown`, the rest is claimed once.
    @Test func claimsAfterARestart() throws {
        let dir = TempDir()
        do {
            let store = try open(dir)
            try running(store, 1...6)
            let first = try store.claim(campaign: "c1", carrier: "k", limit: 2, now: clock.now())
            try store.record(first.map { SendOutcome($0, result: .accepted(gatewayID: "g\($0.id)", detail: nil)) })
            #expect(try store.claim(campaign: "c1", carrier: "k", limit: 2, now: clock.now()).map(\.id) == [3, 4])
            store.close()
        }
        let store = try open(dir)
        defer { store.close() }
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now()).map(\.id) == [5, 6])
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now()).isEmpty)
        #expect(try states(store) == ["sent/1", "sent/1", "unknown/1", "unknown/1", "sending/1", "sending/1"])
    }

    /// A retry, a requeue and a frequency-cap hold come back once each when due, row by row (`sending`), and are
    /// never handed out twice, however the claims fall.
    @Test func retriesAreClaimedAgainExactlyOnce() throws {
        let dir = TempDir()
        let store = try open(dir)
        defer { store.close() }
        try running(store, 1...6)
        var handed: [Int64] = []
        let m = try store.claim(campaign: "c1", carrier: "k", limit: 4, now: clock.now())
        handed += m.map(\.id)
        try store.record([SendOutcome(m[0], result: .accepted(gatewayID: "g1", detail: nil)),
                          SendOutcome(m[1], result: .retry(notBefore: clock.now() + 1_000, detail: "busy")),
                          SendOutcome(m[2], result: .requeue(notBefore: clock.now() + 2_000, detail: "unreachable"))])
        // m[3] still in flight; 5 and 6 fresh.
        let fresh = try store.claim(campaign: "c1", carrier: "k", limit: 1, now: clock.now())
        #expect(fresh.map(\.id) == [5])
        handed += fresh.map(\.id)
        clock.advance(byMillis: 1_000)
        let retry = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now())
        #expect(retry.map(\.id) == [2, 6] && retry.map(\.attempt) == [2, 1])
        handed += retry.map(\.id)
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now()).isEmpty)
        clock.advance(byMillis: 1_000)
        let requeued = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now())
        #expect(requeued.map(\.id) == [3] && requeued.map(\.attempt) == [1])
        handed += requeued.map(\.id)
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now()).isEmpty)
        #expect(handed.sorted() == [1, 2, 2, 3, 3, 4, 5, 6])
        // The retried one again, after its second try failed for a while.
        try store.record([SendOutcome(retry[0], result: .retry(notBefore: clock.now() + 1_000, detail: "busy"))])
        clock.advance(byMillis: 1_000)
        let third = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now())
        #expect(third.map(\.id) == [2] && third.map(\.attempt) == [3])
        try store.record((third + [m[3], fresh[0], retry[1], requeued[0]]).map { SendOutcome($0, result: .accepted(gatewayID: "g\($0.id)", detail: nil)) })
        #expect(try states(store) == ["sent/1", "sent/3", "sent/1", "sent/1", "sent/1", "sent/1"])
        #expect(try claimRecords(dir).isEmpty)
    }

    /// A claim whose transaction fails leaves nothing in flight: the messages are claimed by the next one.
    @Test func aClaimRolledBackLeavesTheBookAsItWas() throws {
        let dir = TempDir()
        let store = try open(dir)
        defer { store.close() }
        try running(store, 1...3)
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try store.write { ctx -> Int in
                _ = try ctx.claim(campaign: "c1", carrier: "k", limit: 2, now: clock.now())
                throw Boom()
            }
        }
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now()).map(\.id) == [1, 2, 3])
        #expect(try claimRecords(dir) == ["1-3"])
    }

    /// The store's row writes (inserts, updates, deletes) for claiming 1,000 fresh messages 100 at a time and
    /// recording each accepted: one per message for its outcome, plus a few per transaction (the claim record
    /// and its deletion, the counters, the log's seq). Claiming row by row took two per message.
    @Test func aRecipientCostsOneRowWritePlusAShareOfItsClaim() throws {
        let dir = TempDir()
        let store = try open(dir)
        defer { store.close() }
        try store.createCampaign(submission("c2"), startAt: 0, deadlineAt: .max)
        _ = try store.ingest(campaign: "c2", rows: (0..<1_000).map { accepted("+8491\(String(format: "%07d", $0))", line: $0 + 2) })
        try store.commitCampaign("c2")
        _ = try store.advanceCampaigns(now: clock.now())
        let before = try store.totalChanges()
        var n = 0
        while true {
            let claimed = try store.claim(campaign: "c2", carrier: "k", limit: 100, now: clock.now())
            if claimed.isEmpty { break }
            try store.record(claimed.map { SendOutcome($0, result: .accepted(gatewayID: "g\($0.id)", detail: nil)) })
            n += claimed.count
        }
        let perRecipient = Double(try store.totalChanges() - before) / Double(n)
        print("row writes per recipient (claim 100 + record 100 accepted): \(perRecipient)")
        #expect(n == 1_000 && perRecipient <= 1.1)
    }

    @Test func claimIDsRoundTrip() {
        #expect(ClaimIDs.encode([1, 2, 3, 5, 7, 8]) == "1-3,5,7-8")
        #expect(ClaimIDs.decode("1-3,5,7-8") == [1, 2, 3, 5, 7, 8])
        #expect(ClaimIDs.decode("3-1") == nil && ClaimIDs.decode("x") == nil)
    }
}
