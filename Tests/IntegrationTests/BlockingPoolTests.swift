import Foundation
import Synchronization
import Testing

/// The integration suites' thread pool (`.ownThreads`): tests that block all at once still all progress, which on
/// Swift's cooperative pool (one thread per core) they could not.
///
/// Where a test's body runs is not asserted. A test of this suite read the pool's name in most runs, but in two
/// fresh-clone CI runs a body (86e9383: four child tasks; 3a1594e: the test itself, after 25 s) read the name of
/// Swift's own threads, which this suite does not explain. So `.ownThreads` is a preference that mostly holds,
/// not a guarantee; the barrier below asserts what the pool itself gives.
@Suite(.ownThreads)
struct BlockingPoolTests {
    /// Eight tasks on the pool each block their thread until all eight have arrived (a barrier, given up after 30 s):
    /// with only as many threads as cores, the first ones would hold every thread and the others would never start.
    /// (The pool is named for each child, not only inherited: see above.)
    @Test func eightBlockedTasksAllArrive() async {
        let barrier = Barrier(parties: 8)
        let arrived = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<8 { group.addTask(executorPreference: BlockingTestPool.shared) { barrier.arriveAndWait(seconds: 30) } }
            return await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        #expect(arrived == 8)
    }
}

private final class Barrier: Sendable {
    private let parties: Int
    private let count = Mutex(0)
    init(parties: Int) { self.parties = parties }

    /// Blocks the calling thread until `parties` threads have arrived; false when `seconds` pass first.
    func arriveAndWait(seconds: Double) -> Bool {
        count.withLock { $0 += 1 }
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if count.withLock({ $0 }) >= parties { return true }
            usleep(1_000)
        }
        return count.withLock { $0 } >= parties
    }
}
