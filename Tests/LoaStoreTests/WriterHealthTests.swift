import Foundation
import Testing
@testable import LoaStore

/// What `/readyz` reads: the writer's own record of its work, never a job on it.
@Suite struct WriterHealthTests {
    @Test func readinessProblems() {
        let now = ContinuousClock.now
        var h = WriterHealth()
        #expect(h.problem(now: now) == nil)
        h.busySince = now - .seconds(5)
        #expect(h.problem(now: now) == nil)
        h.busySince = now - .seconds(31)
        #expect(h.problem(now: now)?.contains("in one transaction for 31 s") == true)
        h.busySince = nil
        h.lastFailure = "database is locked"
        h.lastFailureAt = now - .seconds(10)
        #expect(h.problem(now: now) == "the store's last transaction failed: database is locked")
        // An old failure no longer counts: an idle writer has nothing to show it recovered with.
        h.lastFailureAt = now - .seconds(61)
        #expect(h.problem(now: now) == nil)
        h.closed = true
        #expect(h.problem(now: now) == "the store is closed")
    }
}
