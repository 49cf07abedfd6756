import Foundation
import LoaCore
import Testing
@testable import LoaStore

/// What a claim must refuse, each at its exact edge: a number opted out after submit (with no exclusion list
/// to make the store look), the deadline and the window's close (the instant itself is too late), and a
/// number whose next allowed contact is the deadline. Each test fails under a one-line mutation of the rule it
/// guards (Tests/mutation.sh).
@Suite struct ClaimGuardTests {
    let clock = ManualTimeSource(ISOTime.parse("2026-11-24T01:00:00Z")!)

    func open(_ dir: TempDir) throws -> any MessageStore {
        try makeStore(dir.path, log: DeliveryLogFile(path: dir.path + "/delivery.log"), clock: clock)
    }

    /// A running campaign `id` with the numbers `+849123456NN` for `range`, no exclusion list.
    func running(_ store: any MessageStore, _ range: ClosedRange<Int>, id: String = "c1", deadline: UnixMillis = .max) throws {
        try store.createCampaign(submission(id), startAt: 0, deadlineAt: deadline)
        _ = try store.ingest(campaign: id, rows: range.map { accepted("+849123456\(String(format: "%02d", $0))", line: $0 + 1) })
        try store.commitCampaign(id)
        _ = try store.advanceCampaigns(now: clock.now())
    }

    /// The global opt-out list is read again at claim time even when the campaign has no exclusion list (and
    /// nobody had opted out when it was submitted): the number is suppressed, never handed out.
    @Test(arguments: StoreKind.all) func anOptOutAfterSubmitIsFoundAtClaimWithoutAnExclusionList(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        try running(store, 1...3)
        #expect(try store.campaign("c1")?.states == ["queued": 3])
        #expect(try store.addOptOuts(["+84912345602"], source: "test") == 1)
        let sent = try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now())
        #expect(sent.map(\.phone) == ["+84912345601", "+84912345603"])
        let rec = try #require(try store.campaign("c1"))
        #expect(rec.states == ["sending": 2, "suppressed": 1] && rec.reasons == ["opt-out": 1])
        let suppressed = logLines(dir).filter { $0["event"] as? String == "suppressed" }
        #expect(suppressed.count == 1 && suppressed.first?["recipient"] as? String == "+84912345602")
    }

    /// A claim at the deadline's very millisecond sends nothing; one millisecond before, it does.
    @Test(arguments: StoreKind.all) func noClaimAtTheDeadline(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        let deadline = clock.now() + 60_000
        try running(store, 1...2, deadline: deadline)
        clock.set(deadline)
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now(), deadline: deadline).isEmpty)
        #expect(try store.campaign("c1")?.states == ["queued": 2])
        clock.set(deadline - 1)
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 1, now: clock.now(), deadline: deadline).count == 1)
    }

    /// A claim at the instant the send window closes sends nothing; one millisecond before, it does.
    @Test(arguments: StoreKind.all) func noClaimAtTheWindowsClose(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        try running(store, 1...2)
        let close = clock.now()
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 10, now: clock.now(), policy: nil, deadline: .max, until: close).isEmpty)
        #expect(try store.campaign("c1")?.states == ["queued": 2])
        #expect(try store.claim(campaign: "c1", carrier: "k", limit: 1, now: clock.now(), policy: nil, deadline: .max, until: close + 1).count == 1)
    }

    /// With the contact policy, a number whose next allowed time is exactly the deadline expires (reason
    /// `frequency-cap`); one whose next allowed time is a millisecond before it is held until then.
    @Test(arguments: StoreKind.all) func aNumberHeldUntilExactlyTheDeadlineExpires(kind: StoreKind) throws {
        let dir = TempDir(kind)
        let store = try open(dir)
        defer { store.close() }
        let day: Int64 = 86_400_000
        let policy = ContactPolicy(maxPerWindow: 1, windowMillis: day)
        let t = clock.now()
        try running(store, 1...2, id: "first")
        #expect(try store.claim(campaign: "first", carrier: "k", limit: 10, now: t, policy: policy).count == 2)
        for (id, deadline) in [("atEdge", t + day), ("before", t + day + 1)] {
            try running(store, 1...1, id: id, deadline: deadline)
            #expect(try store.claim(campaign: id, carrier: "k", limit: 10, now: t, policy: policy, deadline: deadline).isEmpty)
        }
        let atEdge = try #require(try store.campaign("atEdge"))
        #expect(atEdge.states == ["expired": 1], "held until the deadline itself: \(atEdge.states)")
        #expect(try store.campaign("before")?.states == ["queued": 1])
        #expect(try store.claim(campaign: "before", carrier: "k", limit: 10, now: t + day, policy: policy, deadline: t + day + 1).count == 1)
    }
}
