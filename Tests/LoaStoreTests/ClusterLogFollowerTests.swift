import LoaCore
import LoaStore
import Testing

/// The cluster log's order rule (``ClusterLogFollower``) on a manual clock: pages as PostgreSQL would give them while
/// transactions commit out of id order.
@Suite struct ClusterLogFollowerTests {
    static func rows(_ ids: [Int64], skip: Set<Int64> = []) -> [ClusterLogRow] {
        ids.map { ClusterLogRow(id: $0, line: skip.contains($0) ? nil : "line \($0)") }
    }

    @Test func aGapIsHeldUntilItsTransactionCommitsAndNothingIsSkippedOrRepeated() {
        var f = ClusterLogFollower(after: 0, holdMillis: 5_000, recheckMillis: 50)
        var now: UnixMillis = 1_000
        // 1, 2 committed; 3 drawn by a transaction (xid 40) still running; 4, 5 committed (xids 41, 42).
        var step = f.take(ClusterLogPage(rows: Self.rows([1, 2, 4, 5]), xmin: 40, horizon: 43), limit: 100, now: now)
        #expect(step.events.map(\.id) == [1, 2])
        #expect(step.next == .readAfter(50) && f.last == 2 && f.isHolding)
        // Still running a moment later: nothing more.
        now += 50
        step = f.take(ClusterLogPage(rows: Self.rows([4, 5]), xmin: 40, horizon: 44), limit: 100, now: now)
        #expect(step.events.isEmpty && step.next == .readAfter(50))
        // Committed: 3, 4, 5 in order, once.
        now += 50
        step = f.take(ClusterLogPage(rows: Self.rows([3, 4, 5]), xmin: 44, horizon: 44), limit: 100, now: now)
        #expect(step.events.map(\.id) == [3, 4, 5] && step.skipped.isEmpty && step.next == .waitForNews)
        #expect(f.last == 5 && !f.isHolding)
    }

    @Test func aRolledBackIdIsPassedAsSoonAsEveryTransactionOfItsTimeHasEnded() {
        var f = ClusterLogFollower(after: 10, holdMillis: 5_000)
        // 12 missing, 13 visible; xid 70 (the one that drew 12) still running: hold.
        var step = f.take(ClusterLogPage(rows: Self.rows([11, 13]), xmin: 70, horizon: 75), limit: 100, now: 0)
        #expect(step.events.map(\.id) == [11] && f.isHolding)
        // xid 72 still runs: the transaction that drew 12 (below the horizon 75) may be it.
        step = f.take(ClusterLogPage(rows: Self.rows([13]), xmin: 72, horizon: 80), limit: 100, now: 100)
        #expect(step.events.isEmpty)
        // Every transaction running when the gap was seen has ended and 12 is still missing: rolled back, passed
        // silently (it can never commit), long before the hold's time.
        step = f.take(ClusterLogPage(rows: Self.rows([13, 14]), xmin: 75, horizon: 81), limit: 100, now: 200)
        #expect(step.events.map(\.id) == [13, 14] && step.skipped.isEmpty && f.last == 14)
        // A gap in a snapshot with nothing running (xmin is the reader's own id, the horizon) is permanent at once.
        step = f.take(ClusterLogPage(rows: Self.rows([16]), xmin: 90, horizon: 90), limit: 100, now: 300)
        #expect(step.events.map(\.id) == [16] && step.skipped.isEmpty)
    }

    @Test func aGapHeldByALongTransactionIsGivenUpAfterTheHoldAndSaidSo() {
        var f = ClusterLogFollower(after: 0, holdMillis: 5_000, recheckMillis: 50)
        var step = f.take(ClusterLogPage(rows: Self.rows([2, 3]), xmin: 5, horizon: 9), limit: 100, now: 10_000)
        #expect(step.events.isEmpty && step.next == .readAfter(50))
        step = f.take(ClusterLogPage(rows: Self.rows([2, 3]), xmin: 5, horizon: 12), limit: 100, now: 14_980)
        #expect(step.events.isEmpty && step.next == .readAfter(20), "the last look comes when the hold ends")
        step = f.take(ClusterLogPage(rows: Self.rows([2, 3]), xmin: 5, horizon: 12), limit: 100, now: 15_000)
        #expect(step.skipped == [1...1] && step.events.map(\.id) == [2, 3] && !f.isHolding)
    }

    @Test func filteredRowsMoveThePlaceAndAFullPageAsksForMore() {
        var f = ClusterLogFollower(after: 0)
        var step = f.take(ClusterLogPage(rows: Self.rows([1, 2, 3], skip: [2]), xmin: 1, horizon: 1), limit: 3, now: 0)
        #expect(step.events.map(\.id) == [1, 3] && f.last == 3 && step.next == .readAgain)
        // Rows at or below the place (a page read before the place moved) are not given again.
        step = f.take(ClusterLogPage(rows: Self.rows([3, 4]), xmin: 1, horizon: 1), limit: 3, now: 0)
        #expect(step.events.map(\.id) == [4] && step.next == .waitForNews)
    }
}
