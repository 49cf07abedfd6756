import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// A fresh data directory per test, removed afterwards.
/// `kind`: the store ``makeStore(_:log:clock:maskNumbers:logger:kind:)`` opens in it.
final class TempDir {
    let path: String
    let kind: StoreKind
    init(_ kind: StoreKind = .default) {
        path = NSTemporaryDirectory() + "loa-store-test-" + UUID().uuidString
        self.kind = kind
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        StoreKind.register(path, kind)
    }
    deinit {
        StoreKind.forget(path)
        try? FileManager.default.removeItem(atPath: path)
    }
}

func submission(_ id: String = "c1") -> CampaignSubmission {
    CampaignSubmission(id: id, name: "test", sender: "LOA", templates: [.init(name: "t", text: "Hi {{name}}")],
                       segments: [.init(name: "s.csv", phoneColumn: "phone")], start: "2026-11-24T00:00:00Z",
                       deadline: "2026-11-30T00:00:00Z", encoding: .auto, maxSegments: nil, allowedCountryCodes: [])
}

func accepted(_ phone: String, line: Int, carrier: String = "k") -> IngestRow {
    .accepted(phone: phone, carrier: carrier, text: "Hi \(line)", encoding: .gsm7, segments: 1, source: "s.csv", line: line, raw: phone)
}

func logLines(_ dir: TempDir) -> [[String: Any]] {
    let text = (try? String(contentsOfFile: dir.path + "/delivery.log", encoding: .utf8)) ?? ""
    return text.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
}

@Suite struct StoreTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    func open(_ dir: TempDir, logger: Logger = Logger(label: "loa")) throws -> any MessageStore {
        try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock, logger: logger)
    }

    func loaded(_ store: any MessageStore, rows: [IngestRow]) throws -> IngestCounts {
        try store.createCampaign(submission(), startAt: ISOTime.parse("2026-11-24T00:00:00Z")!, deadlineAt: ISOTime.parse("2026-11-30T00:00:00Z")!)
        let c = try store.ingest(campaign: "c1", rows: rows)
        try store.commitCampaign("c1")
        _ = try store.advanceCampaigns(now: clock.now())
        return c
    }

    @Test(arguments: StoreKind.all) func ingestDeduplicatesAndCountsRejects(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        let c = try loaded(store, rows: [
            accepted("+84912345678", line: 2), accepted("+84912345679", line: 3), accepted("+84912345678", line: 4),
            .rejected(raw: "02838221234", code: "fixed-line", message: "fixed line", source: "s.csv", line: 5),
        ])
        #expect(c.rows == 4 && c.accepted == 2 && c.duplicates == 1 && c.rejected == 1)
        let rec = try #require(try store.campaign("c1"))
        #expect(rec.state == .running)
        #expect(rec.states["queued"] == 2 && rec.states["rejected"] == 1)
        #expect(rec.carriers["k"]?["queued"] == 2)
        let log = logLines(dir)
        #expect(log.count == 1 && log[0]["event"] as? String == "rejected")
        // Files holding numbers are private.
        for f in kind == .sqlite ? ["loa.db", "delivery.log"] : ["delivery.log"] {
            let mode = try FileManager.default.attributesOfItem(atPath: dir.path + "/" + f)[.posixPermissions] as! Int
            #expect(mode & 0o077 == 0, "\(f) is \(String(mode, radix: 8))")
        }
    }

    @Test(arguments: StoreKind.all) func claimSendReceiveAndCounts(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        _ = try loaded(store, rows: (0..<10).map { accepted("+8491234560\($0)", line: $0 + 2) })
        let first = try store.claim(campaign: "c1", carrier: "k", limit: 4, now: clock.now())
        #expect(first.map(\.phone) == (0..<4).map { "+8491234560\($0)" })
        #expect(first.allSatisfy { $0.attempt == 1 })
        #expect(try store.claim(campaign: "c1", carrier: "other", limit: 4, now: clock.now()).isEmpty)
        try store.record([
            SendOutcome(id: first[0].id, result: .accepted(gatewayID: "g0", detail: nil)),
            SendOutcome(id: first[1].id, result: .failed(detail: "HTTP 400")),
            SendOutcome(id: first[2].id, result: .retry(notBefore: clock.now() + 60_000, detail: "HTTP 500")),
            SendOutcome(id: first[3].id, result: .accepted(gatewayID: nil, detail: nil)),
        ])
        // The retried message is not claimable before its time, then is, with attempt 2.
        let next = try store.claim(campaign: "c1", carrier: "k", limit: 100, now: clock.now())
        #expect(!next.contains { $0.id == first[2].id })
        #expect(next.count == 6)
        let later = try store.claim(campaign: "c1", carrier: "k", limit: 100, now: clock.now() + 60_000)
        #expect(later.map(\.id) == [first[2].id] && later[0].attempt == 2)

        let results = try store.apply([
            ReceiptUpdate(carrier: "k", messageID: first[0].id, status: .smscAccepted),
            ReceiptUpdate(carrier: "k", messageID: first[0].id, status: .delivered),
            ReceiptUpdate(carrier: "k", messageID: first[0].id, status: .delivered),
            ReceiptUpdate(carrier: "k", messageID: first[0].id, status: .smscAccepted),
            ReceiptUpdate(carrier: "x", messageID: first[3].id, status: .delivered),
            ReceiptUpdate(carrier: "k", messageID: 999_999, status: .delivered),
            ReceiptUpdate(carrier: "k", messageID: first[3].id, status: .undelivered),
        ])
        #expect(results == [.applied, .applied, .duplicate, .duplicate, .wrongCarrier, .notFound, .applied])
        let rec = try #require(try store.campaign("c1"))
        #expect(rec.states["delivered"] == 1 && rec.states["failed"] == 2 && rec.states["sending"] == 7)
        #expect(rec.states.values.reduce(0, +) == 10)
    }

    /// What the dispatcher records for a throttled answer or a refusal of the credentials (`.requeue`) gives the
    /// claim's attempt back, on the claimed path and the general one: a message throttled again and again is
    /// still at its first attempt, and the batch minimum's readiness counts what may come.
    @Test(arguments: StoreKind.all) func requeuedMessagesKeepTheirAttempt(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        _ = try loaded(store, rows: (0..<3).map { accepted("+8491234560\($0)", line: $0 + 2) })
        var now = clock.now()
        for round in 0..<3 {
            let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: now)
            #expect(claimed.count == 3 && claimed.allSatisfy { $0.attempt == 1 }, "round \(round): \(claimed.map(\.attempt))")
            #expect(try store.batchReadiness(campaign: "c1", carrier: "k", now: now, limit: 30) == (0, true), "in flight: more may come")
            // Claimed path for two, the general path (no claimed message) for the third.
            try store.record([SendOutcome(claimed[0], result: .requeue(notBefore: now + 1000, detail: "throttled: HTTP 429")),
                              SendOutcome(claimed[1], result: .requeue(notBefore: now + 1000, detail: "gateway refuses Loa's credentials")),
                              SendOutcome(id: claimed[2].id, result: .requeue(notBefore: now + 1000, detail: "throttled: HTTP 429"))])
            #expect(try store.batchReadiness(campaign: "c1", carrier: "k", now: now, limit: 30) == (0, true), "queued for later")
            now += 1000
            #expect(try store.batchReadiness(campaign: "c1", carrier: "k", now: now, limit: 2) == (2, false), "counted up to the limit")
        }
        let states = try store.messageStates(campaign: "c1")
        #expect(states.allSatisfy { $0.state == .queued && $0.attempts == 0 }, "\(states)")
        let requeued = logLines(dir).filter { $0["event"] as? String == "requeued" }
        #expect(requeued.count == 9 && requeued.allSatisfy { $0["attempt"] as? Int == 0 })
    }

    @Test(arguments: StoreKind.all) func receiptBeforeTheSendAnswerIsKept(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        _ = try loaded(store, rows: [accepted("+84912345600", line: 2)])
        let m = try store.claim(campaign: "c1", carrier: "k", limit: 1, now: clock.now())[0]
        #expect(try store.apply([ReceiptUpdate(carrier: "k", messageID: m.id, status: .delivered)]) == [.applied])
        try store.record([SendOutcome(id: m.id, result: .accepted(gatewayID: "gw-1", detail: nil))])
        let states = try store.messageStates(campaign: "c1")
        #expect(states.map(\.state) == [.delivered])
        let events = logLines(dir).map { "\($0["event"]!)→\($0["status"]!)" }
        #expect(events == ["sending→sending", "receipt→delivered", "accepted→delivered"])
    }

    @Test(arguments: StoreKind.all) func acceptancesOfClaimedMessagesAreRecordedInBulkAndFallBackWhenAReceiptOvertookOne(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        _ = try loaded(store, rows: (0..<160).map { accepted("+849123\(String(format: "%05d", $0))", line: $0 + 2) })
        let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 160, now: clock.now())
        #expect(claimed.count == 160)
        // Message 130 (in the second run of 100) got its final receipt before its send answer.
        #expect(try store.apply([ReceiptUpdate(carrier: "k", messageID: claimed[130].id, status: .delivered)]) == [.applied])
        // A stale copy (the claimed attempt no longer matches) must not take the bulk path either.
        var stale = claimed[150]
        stale.attempt += 1
        var outcomes = claimed.map { SendOutcome($0, result: .accepted(gatewayID: "gw-\($0.id)", detail: nil)) }
        outcomes[150] = SendOutcome(stale, result: .accepted(gatewayID: "gw-\(stale.id)", detail: nil))
        try store.record(outcomes)
        let states = try store.messageStates(campaign: "c1").map(\.state)
        #expect(states.filter { $0 == .sent }.count == 159 && states[130] == .delivered)
        let rec = try #require(try store.campaign("c1"))
        #expect(rec.states["sent"] == 159 && rec.states["delivered"] == 1 && (rec.states["sending"] ?? 0) == 0)
        let log = logLines(dir)
        let acceptedLines = log.filter { $0["event"] as? String == "accepted" }
        #expect(acceptedLines.count == 160)
        #expect(Set(acceptedLines.compactMap { $0["gateway_id"] as? String }) == Set(claimed.map { "gw-\($0.id)" }))
        #expect(acceptedLines.first { $0["message"] as? Int == Int(claimed[130].id) }?["status"] as? String == "delivered")
        #expect(acceptedLines.filter { $0["status"] as? String == "sent" }.allSatisfy { $0["attempt"] as? Int == 1 })
        let seqs = log.map { $0["seq"] as! Int }
        #expect(seqs == Array(1...seqs.count))
    }

    /// One bulk run of acceptances that mixes campaigns and carriers (the dispatcher records whatever finished,
    /// together): each campaign's counters, per carrier, move by exactly its own messages.
    @Test(arguments: StoreKind.all) func bulkAcceptancesOfSeveralCampaignsAndCarriersMoveEachOnesCounters(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        let start = ISOTime.parse("2026-11-24T00:00:00Z")!, deadline = ISOTime.parse("2026-11-30T00:00:00Z")!
        for (id, prefix) in [("c1", "+849123"), ("c2", "+849124")] {
            try store.createCampaign(submission(id), startAt: start, deadlineAt: deadline)
            _ = try store.ingest(campaign: id, rows: (0..<30).map {
                accepted("\(prefix)\(String(format: "%05d", $0))", line: $0 + 2, carrier: $0 % 3 == 0 ? "v" : "k")
            })
            try store.commitCampaign(id)
        }
        _ = try store.advanceCampaigns(now: clock.now())
        var claimed: [OutgoingMessage] = []
        for id in ["c1", "c2"] {
            for carrier in ["k", "v"] { claimed += try store.claim(campaign: id, carrier: carrier, limit: 30, now: clock.now()) }
        }
        #expect(claimed.count == 60)
        // Interleaved: campaign and carrier change from one outcome to the next, in runs of every length.
        let order = claimed.indices.sorted { ($0 * 7919) % claimed.count < ($1 * 7919) % claimed.count }
        try store.record(order.map { SendOutcome(claimed[$0], result: .accepted(gatewayID: "gw-\(claimed[$0].id)", detail: nil)) })
        for id in ["c1", "c2"] {
            let rec = try #require(try store.campaign(id))
            #expect(rec.states["sent"] == 30 && (rec.states["sending"] ?? 0) == 0 && (rec.states["queued"] ?? 0) == 0, "\(id): \(rec.states)")
            #expect(rec.carriers["k"]?["sent"] == 20 && rec.carriers["v"]?["sent"] == 10, "\(id): \(rec.carriers)")
            #expect((rec.carriers["k"]?["sending"] ?? 0) == 0 && (rec.carriers["v"]?["sending"] ?? 0) == 0, "\(id): \(rec.carriers)")
        }
        #expect(logLines(dir).filter { $0["event"] as? String == "accepted" }.count == 60)
    }

    @Test(arguments: StoreKind.all) func crashLeavesSendingAsUnknownAndTheLogWhole(kind: StoreKind) throws {
        let dir = TempDir(kind)
        do {
            let store = try open(dir)
            _ = try loaded(store, rows: (0..<3).map { accepted("+8491234561\($0)", line: $0 + 2) })
            let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 2, now: clock.now())
            try store.record([SendOutcome(id: claimed[0].id, result: .accepted(gatewayID: nil, detail: nil))])
            store.close()
        }
        // Simulate a crash mid-write: a torn line at the end of the log.
        let fh = try #require(FileHandle(forWritingAtPath: dir.path + "/delivery.log"))
        fh.seekToEndOfFile()
        fh.write(Data("{\"v\":1,\"seq\":99,\"ti".utf8))
        try fh.close()
        let store = try open(dir)
        defer { store.close() }
        let states = try store.messageStates(campaign: "c1").map(\.state)
        #expect(states == [.sent, .unknown, .queued])
        let log = logLines(dir)  // parses every line: the torn one is gone
        let seqs = log.map { $0["seq"] as! Int }
        #expect(seqs == Array(1...seqs.count), "seq must be gapless: \(seqs)")
        #expect(log.last?["event"] as? String == "unknown")
        // The recovered message is never claimed again.
        let again = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now())
        #expect(again.count == 1)
        // What was recovered is reported: one message made unknown, one torn line cut, and per campaign.
        #expect(store.recovery.unknownMessages == 1 && store.recovery.unknownByCampaign == ["c1": 1])
        #expect(store.recovery.tornLinesCut == 1 && store.recovery.uncommittedLinesCut == 0 && store.recovery.logLinesRepaired == 1)
        #expect(store.recovery.seconds > 0)
        #expect(try store.campaign("c1")?.recoveredUnknown == 1)
    }

    /// The per-campaign count of messages made unknown at a start adds up over starts; a clean start reports none.
    @Test(arguments: StoreKind.all) func recoveredUnknownAddsUpOverStartsAndACleanStartReportsNothing(kind: StoreKind) throws {
        let dir = TempDir(kind)
        for round in 1...2 {
            let store = try open(dir)
            if round == 1 { _ = try loaded(store, rows: (0..<5).map { accepted("+8491234562\($0)", line: $0 + 2) }) }
            #expect(store.recovery.unknownMessages == (round == 1 ? 0 : 2))
            _ = try store.claim(campaign: "c1", carrier: "k", limit: 2, now: clock.now())
            store.close()  // a close with messages still `sending` stands for a kill
        }
        let store = try open(dir)
        #expect(store.recovery.unknownMessages == 2 && store.recovery.logLinesRepaired == 0)
        #expect(try store.campaign("c1")?.recoveredUnknown == 4)
        store.close()
        let clean = try open(dir)
        defer { clean.close() }
        #expect(clean.recovery.unknownMessages == 0 && clean.recovery.unknownByCampaign.isEmpty && clean.recovery.logLinesRepaired == 0)
        #expect(try clean.campaign("c1")?.recoveredUnknown == 4)
    }

    @Test(arguments: StoreKind.all) func linesOfATransactionThatNeverCommittedAreCut(kind: StoreKind) throws {
        let dir = TempDir(kind)
        do {
            let store = try open(dir)
            _ = try loaded(store, rows: [accepted("+84912345620", line: 2), accepted("+84912345621", line: 3)])
            _ = try store.claim(campaign: "c1", carrier: "k", limit: 1, now: clock.now())
            store.close()
        }
        let before = logLines(dir)
        let committed = try #require(before.last?["seq"] as? Int)
        // A crash between the append and the COMMIT: the log holds lines (here ~600 KB, more than the
        // repair's read window) of a transaction the database never saw.
        let fh = try #require(FileHandle(forWritingAtPath: dir.path + "/delivery.log"))
        fh.seekToEndOfFile()
        var ghost = ""
        for k in 1...3_000 {
            ghost += "{\"v\":1,\"seq\":\(committed + k),\"time\":\"2026-11-24T00:00:00.000Z\",\"campaign\":\"c1\",\"message\":2,"
                + "\"event\":\"accepted\",\"status\":\"sent\",\"attempt\":1,\"detail\":\"\(String(repeating: "x", count: 100))\"}\n"
        }
        fh.write(Data(ghost.utf8))
        try fh.close()
        let store = try open(dir)
        defer { store.close() }
        let log = logLines(dir)
        #expect(!log.contains { $0["event"] as? String == "accepted" }, "the uncommitted lines must be gone")
        let seqs = log.map { $0["seq"] as! Int }
        #expect(seqs == Array(1...seqs.count), "seq must be gapless: \(seqs.suffix(5))")
        #expect(log.last?["event"] as? String == "unknown")  // the recovery of the claimed message follows at once
        #expect(try store.messageStates(campaign: "c1").map(\.state) == [.unknown, .queued])
        #expect(store.recovery.uncommittedLinesCut == 3_000 && store.recovery.tornLinesCut == 0 && store.recovery.logLinesRepaired == 3_000)
        #expect(store.recovery.unknownMessages == 1)
    }

    @Test(arguments: StoreKind.all) func linesOfSeveralTransactionsPastTheStoreAreKept(kind: StoreKind) throws {
        let dir = TempDir(kind)
        do {
            let store = try open(dir)
            _ = try loaded(store, rows: [accepted("+84912345620", line: 2)])
            _ = try store.claim(campaign: "c1", carrier: "k", limit: 1, now: clock.now())
            store.close()
        }
        let committed = try #require(logLines(dir).last?["seq"] as? Int)
        // Lines of two transactions past the store's seq: not a crash between append and commit (a store
        // restored from a backup, say). Nothing of the log may be destroyed; numbering goes on after them.
        let fh = try #require(FileHandle(forWritingAtPath: dir.path + "/delivery.log"))
        fh.seekToEndOfFile()
        for (k, time) in ["2026-11-24T00:00:00.000Z", "2026-11-24T00:00:01.000Z"].enumerated() {
            fh.write(Data(("{\"v\":1,\"seq\":\(committed + k + 1),\"time\":\"\(time)\",\"campaign\":\"c1\",\"message\":1,"
                + "\"event\":\"accepted\",\"status\":\"sent\",\"attempt\":1}\n").utf8))
        }
        try fh.close()
        let logs = CollectingLogHandler()
        let store = try open(dir, logger: Logger(label: "loa", handler: logs))
        defer { store.close() }
        // The operator is told, through the store's logger.
        let warning = try #require(logs.records.first { $0.message.hasPrefix("the delivery log goes past what the store has committed") })
        #expect(warning.level == .warning)
        #expect(warning.metadata["log.lines_past_store"] == "2" && warning.metadata["store.committed_seq"] == "\(committed)")
        let log = logLines(dir)
        #expect(log.filter { $0["event"] as? String == "accepted" }.count == 2)
        let seqs = log.map { $0["seq"] as! Int }
        #expect(seqs == Array(1...seqs.count), "seq must be gapless: \(seqs.suffix(5))")
        #expect(log.last?["event"] as? String == "unknown" && log.last?["seq"] as? Int == committed + 3)
    }

    @Test(arguments: StoreKind.all) func deadlineExpiresQueuedAndCompletes(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        _ = try loaded(store, rows: (0..<5).map { accepted("+8491234563\($0)", line: $0 + 2) })
        let m = try store.claim(campaign: "c1", carrier: "k", limit: 1, now: clock.now())
        try store.record([SendOutcome(id: m[0].id, result: .accepted(gatewayID: nil, detail: nil))])
        let deadline = ISOTime.parse("2026-11-30T00:00:00Z")!
        while try store.advanceCampaigns(now: deadline, limit: 2) {}
        let rec = try #require(try store.campaign("c1"))
        #expect(rec.state == .expired)
        #expect(rec.states["expired"] == 4 && rec.states["sent"] == 1)
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 10, now: deadline).isEmpty)
    }

    @Test(arguments: StoreKind.all) func loadingCampaignsCanBeDiscardedButNotSentFrom(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        try store.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        _ = try store.ingest(campaign: "c1", rows: [accepted("+84912345640", line: 2)])
        #expect(try store.activeWork().isEmpty)
        #expect(throws: StoreError.self) { try store.createCampaign(submission(), startAt: 0, deadlineAt: .max) }
        try store.discardLoadingCampaign("c1")
        #expect(try store.campaign("c1") == nil)
        #expect(try store.campaigns().isEmpty)
    }

    /// SQLite-specific: the writer's group commit (``Store/perform(_:)``).
    @Test func concurrentWritersAreGroupCommitted() async throws {
        let dir = TempDir()
        let store = try #require(try open(dir) as? Store)
        defer { store.close() }
        _ = try loaded(store, rows: (0..<200).map { accepted("+849123\(String(format: "%05d", $0))", line: $0 + 2) })
        let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 200, now: clock.now())
        try store.record(claimed.map { SendOutcome(id: $0.id, result: .accepted(gatewayID: nil, detail: nil)) })
        await withTaskGroup(of: Void.self) { group in
            for m in claimed {
                group.addTask {
                    _ = try? await store.perform { ctx in try ctx.apply(ReceiptUpdate(carrier: "k", messageID: m.id, status: .delivered)) }
                }
            }
        }
        let rec = try #require(try store.campaign("c1"))
        #expect(rec.states["delivered"] == 200)
        #expect(rec.state == .completed || rec.state == .running)
    }

    @Test(arguments: StoreKind.all) func optOutsAndExclusionsAtIngestAndBeforeSending(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        #expect(try store.addOptOuts(["+84912345001"], source: "test") == 1)
        #expect(try store.addOptOuts(["+84912345001"], source: "test") == 0)
        try store.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        #expect(try store.addExclusions(campaign: "c1", phones: ["+84912345002"]) == 1)
        // A batch repeating a number, and one already listed: each number counted once.
        #expect(try store.addExclusions(campaign: "c1", phones: ["+84912345002", "+84912345099", "+84912345099"]) == 1)
        let c = try store.ingest(campaign: "c1", rows: (1...5).map { accepted("+8491234500\($0)", line: $0 + 1) }
                                 + [accepted("+84912345005", line: 9)]
                                 + [.rejected(raw: "abc", code: "invalid-characters", message: "letters", source: "s.csv", line: 10)])
        #expect(c.accepted == 3 && c.suppressed == 2 && c.duplicates == 1 && c.rejected == 1)
        try store.commitCampaign("c1")
        _ = try store.advanceCampaigns(now: clock.now())
        // Opted out after submit: found just before sending.
        _ = try store.addOptOuts(["+84912345003"], source: "test")
        let sent = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now())
        #expect(sent.map(\.phone) == ["+84912345004", "+84912345005"])
        let rec = try #require(try store.campaign("c1"))
        #expect(rec.states["suppressed"] == 3 && rec.suppressed == 3)
        #expect(rec.reasons == ["opt-out": 2, "excluded": 1, "duplicate": 1, "invalid-characters": 1])
        // The rejects report: every row not sent, in file order, with its reason, across pages.
        var rows: [RejectRow] = []
        var after: Int64 = 0
        while true {
            let page = try store.rejects(campaign: "c1", after: after, batch: 2)
            rows += page.map(\.row)
            guard page.count == 2 else { break }
            after = page.last!.cursor
        }
        #expect(Set(rows.map(\.reason)) == ["opt-out", "excluded", "duplicate", "invalid-characters"])
        #expect(rows.count == 5)
        #expect(rows.first { $0.reason == "duplicate" }?.line == 9)
        #expect(rows.first { $0.reason == "invalid-characters" }?.raw == "abc")
        #expect(try store.removeOptOuts(["+84912345001"]) == 1)
        let log = logLines(dir).filter { $0["event"] as? String == "suppressed" }
        #expect(log.count == 3)
    }
}

@Suite struct CampaignControlTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    @Test(arguments: StoreKind.all) func pauseResumeCancelSurviveRestart(kind: StoreKind) throws {
        let dir = TempDir(kind)
        var store = try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
        try store.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        _ = try store.ingest(campaign: "c1", rows: (0..<10).map { accepted("+8491234570\($0)", line: $0 + 2) })
        try store.commitCampaign("c1")
        _ = try store.advanceCampaigns(now: clock.now())
        #expect(try store.apply(.pause, to: "c1", now: clock.now()) == .paused)
        #expect(try store.activeWork().first?.state == .paused)
        #expect(throws: StoreError.self) { try store.apply(.pause, to: "c1", now: clock.now()) }
        store.close()
        store = try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
        defer { store.close() }
        #expect(try store.campaign("c1")?.state == .paused)
        #expect(try store.apply(.resume(started: true), to: "c1", now: clock.now()) == .running)
        let sent = try store.claim(campaign: "c1", carrier: "k", limit: 3, now: clock.now())
        #expect(try store.apply(.cancel, to: "c1", now: clock.now()) == .cancelled)
        while try store.advanceCampaigns(now: clock.now(), limit: 4) {}
        try store.record(sent.map { SendOutcome(id: $0.id, result: .accepted(gatewayID: nil, detail: nil)) })
        let rec = try #require(try store.campaign("c1"))
        #expect(rec.state == .cancelled)
        #expect(rec.states == ["cancelled": 7, "sent": 3])
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now()).isEmpty)
        #expect(throws: StoreError.self) { try store.apply(.resume(started: true), to: "c1", now: clock.now()) }
    }

    /// One store per data directory: a second one is refused, naming the owner, until the first is closed.
    @Test(arguments: StoreKind.all) func aSecondStoreOnTheSameDirectoryIsRefused(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let first = try makeStore(dir.path, log: nil, clock: clock)
        do {
            _ = try makeStore(dir.path, log: nil, clock: clock)
            Issue.record("a second store opened the same directory")
        } catch let error as StoreError {
            guard case .conflict(let message) = error else { Issue.record("unexpected \(error)"); return }
            #expect(message.contains("in use by another loa process (pid \(getpid()))"), "\(message)")
        }
        let mode = try FileManager.default.attributesOfItem(atPath: dir.path + "/loa.lock")[.posixPermissions] as! Int
        #expect(mode == 0o600)
        first.close()
        first.close()  // idempotent
        let second = try makeStore(dir.path, log: nil, clock: clock)
        second.close()
    }

    /// A store that fails to open (here: loa.db is not a database) lets go of the directory: the next attempt
    /// fails on the database again, not on the lock. SQLite-specific (its database file).
    @Test func aStoreThatFailsToOpenReleasesTheDirectory() throws {
        let dir = TempDir()
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: dir.path + "/loa.db"))
        for _ in 0..<2 {
            do {
                _ = try Store(directory: dir.path, log: nil, clock: clock)
                Issue.record("a store opened a file that is not a database")
            } catch let error as StoreError {
                Issue.record("refused by the lock: \(error)")
            } catch {
                #expect("\(error)".contains("not a database"), "\(error)")
            }
        }
    }

    @Test(arguments: StoreKind.all) func deadlineExpiresAPausedCampaign(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try makeStore(dir.path, log: nil, clock: clock)
        defer { store.close() }
        try store.createCampaign(submission(), startAt: 0, deadlineAt: clock.now() + 1000)
        _ = try store.ingest(campaign: "c1", rows: [accepted("+84912345800", line: 2)])
        try store.commitCampaign("c1")
        _ = try store.apply(.pause, to: "c1", now: clock.now())
        while try store.advanceCampaigns(now: clock.now() + 1000) {}
        #expect(try store.campaign("c1")?.state == .expired)
        #expect(try store.campaign("c1")?.states == ["expired": 1])
    }
}

@Suite struct FrequencyCapTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    @Test(arguments: StoreKind.all) func secondCampaignWaitsForTheRollingWindowOrExpires(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try makeStore(dir.path, log: nil, clock: clock)
        defer { store.close() }
        let policy = ContactPolicy(maxPerWindow: 1, windowMillis: 86_400_000)
        for id in ["first", "second", "third"] {
            try store.createCampaign(submission(id), startAt: 0, deadlineAt: id == "third" ? clock.now() + 3_600_000 : .max)
            _ = try store.ingest(campaign: id, rows: [accepted("+84912345900", line: 2), accepted("+8491234590\(id.count)", line: 3)])
            try store.commitCampaign(id)
        }
        _ = try store.advanceCampaigns(now: clock.now())
        let t = clock.now()
        #expect(try store.claim(campaign: "first", carrier: "k", limit: 10, now: t, policy: policy).count == 2)
        // The shared number is held for 24 h in the second campaign; its other number goes.
        let second = try store.claim(campaign: "second", carrier: "k", limit: 10, now: t, policy: policy)
        #expect(second.map(\.phone) == ["+84912345906"])
        #expect(try store.claim(campaign: "second", carrier: "k", limit: 10, now: t + 86_399_999, policy: policy).isEmpty)
        #expect(try store.claim(campaign: "second", carrier: "k", limit: 10, now: t + 86_400_000, policy: policy).map(\.phone) == ["+84912345900"])
        // In a campaign whose deadline comes first, it expires with reason frequency-cap.
        _ = try store.claim(campaign: "third", carrier: "k", limit: 10, now: t + 1000, policy: policy, deadline: t + 3_600_000)
        let third = try store.messageStates(campaign: "third")
        #expect(third.first { $0.phone == "+84912345900" }?.state == .expired)
    }
}

extension StoreTests {
    /// An opt-out reply suppresses the number's queued messages in every campaign, through the (campaign, phone)
    /// index: the phone index it used to need (a page changed per claimed recipient) is gone. SQLite-specific
    /// (its indexes and query plan).
    @Test func optOutReplyUsesTheCampaignPhoneIndex() throws {
        let dir = TempDir()
        let store = try #require(try open(dir) as? Store)
        defer { store.close() }
        _ = try loaded(store, rows: [accepted("+84912345678", line: 2), accepted("+84912345679", line: 3)])
        let start = ISOTime.parse("2026-11-24T00:00:00Z")!, deadline = ISOTime.parse("2026-11-30T00:00:00Z")!
        try store.createCampaign(submission("c2"), startAt: start, deadlineAt: deadline)
        _ = try store.ingest(campaign: "c2", rows: [accepted("+84912345678", line: 2)])
        try store.commitCampaign("c2")
        _ = try store.advanceCampaigns(now: clock.now())
        // c1's message to the number is already on its way: an opt-out does not touch it.
        let claimed = try store.claim(campaign: "c1", carrier: "k", limit: 1, now: clock.now())
        #expect(claimed.map(\.phone) == ["+84912345678"])

        #expect(try store.optOutNow("+84912345678", source: "test") == 1)
        #expect(try store.campaign("c2")?.states["suppressed"] == 1)
        #expect(try store.campaign("c1")?.states["sending"] == 1 && store.campaign("c1")?.states["queued"] == 1)

        let (indexes, plan) = try store.write { ctx -> ([String], [String]) in
            var names: [String] = []
            try ctx.statement("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'").query { names.append($0.text(0) ?? "") }
            var plan: [String] = []
            try ctx.statement("EXPLAIN QUERY PLAN " + Store.queuedForPhoneSQL).query([.text("+84912345678")]) { plan.append($0.text(3) ?? "") }
            return (names, plan)
        }
        #expect(!indexes.contains("messages_phone_queued") && indexes.contains("messages_dedup"))
        #expect(plan.contains { $0.contains("USING INDEX messages_dedup") }, "\(plan)")
        #expect(!plan.contains { $0.hasPrefix("SCAN messages") }, "\(plan)")
    }
}

/// What the store does with inputs that must not change it: a discarded campaign's late uploads, a stored
/// campaign that breaks the rules, a damaged log line.
@Suite struct StoreHardeningTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    @Test(arguments: StoreKind.all) func uploadsAndCommitsAreBoundToTheCampaignsGeneration(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
        defer { store.close() }
        let first = try store.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        _ = try store.ingest(campaign: "c1", generation: first, rows: [accepted("+84912345001", line: 2)])
        try store.discardLoadingCampaign("c1", generation: first)
        let second = try store.createCampaign(submission(), startAt: 0, deadlineAt: .max)
        #expect(second != first)
        #expect(throws: StoreError.self) { try store.ingest(campaign: "c1", generation: first, rows: [accepted("+84912345002", line: 3)]) }
        #expect(throws: StoreError.self) { try store.addExclusions(campaign: "c1", generation: first, phones: ["+84912345003"]) }
        #expect(throws: StoreError.self) { try store.commitCampaign("c1", generation: first) }
        #expect(throws: StoreError.self) { try store.discardLoadingCampaign("c1", generation: first) }
        #expect(try store.campaign("c1")?.rows == 0)
        #expect(try store.campaign("c1")?.generation == second)
        _ = try store.ingest(campaign: "c1", generation: second, rows: [accepted("+84912345004", line: 2)])
        try store.commitCampaign("c1", generation: second)
        #expect(try store.campaign("c1")?.state == .scheduled)
    }

    @Test(arguments: StoreKind.all) func aStoredCampaignThatBreaksTheRulesFailsAndItsQueueIsCancelled(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
        defer { store.close() }
        var bad = submission("bad")
        bad.maxRate = 1e300
        bad.weight = Int.max
        try store.createCampaign(bad, startAt: 0, deadlineAt: .max)
        _ = try store.ingest(campaign: "bad", rows: (0..<5).map { accepted("+8491234560\($0)", line: $0 + 2) })
        try store.commitCampaign("bad")
        try store.createCampaign(submission("good"), startAt: 0, deadlineAt: .max)
        _ = try store.ingest(campaign: "good", rows: [accepted("+84912345700", line: 2)])
        try store.commitCampaign("good")
        let failed = try store.activeWorkAndFailures().failed
        #expect(failed.map(\.id) == ["bad"])
        #expect(failed.first?.reason.contains("max_rate") == true && failed.first?.reason.contains("weight") == true)
        #expect(try store.activeWorkAndFailures().failed.isEmpty, "once")
        while try store.advanceCampaigns(now: clock.now()) {}
        let rec = try #require(try store.campaign("bad"))
        #expect(rec.state == .failed && rec.states == ["cancelled": 5] && rec.failure?.contains("max_rate") == true)
        #expect(try store.activeWork().map(\.id) == ["good"])
        #expect(throws: StoreError.self) { try store.apply(.resume(started: true), to: "bad", now: clock.now()) }
        let events = logLines(dir).filter { $0["campaign"] as? String == "bad" }
        #expect(events.count == 5 && events.allSatisfy { ($0["detail"] as? String ?? "").hasPrefix("campaign failed: ") })
    }

    @Test func aDamagedSeqInTheLogIsNoNumber() {
        #expect(DeliveryLogFile.seq(in: Array(#"{"seq":123,"x":1}"#.utf8)) == 123)
        #expect(DeliveryLogFile.seq(in: Array(#"{"seq":99999999999999999999999999,"x":1}"#.utf8)) == nil)
    }
}
