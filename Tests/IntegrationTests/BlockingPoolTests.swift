import Foundation
import Synchronization
import Testing

/// The integration suites' thread pool (`.ownThreads`): a test there runs on the pool's threads, and tests that
/// block all at once still all progress, which on Swift's cooperative pool (one thread per core) they could not.
@Suite(.ownThreads)
struct BlockingPoolTests {
    /// (Where a test's child tasks run is not asserted: in one CI run the four children of such a group read the
    /// name of Swift's own threads while their parent ran here, which this suite does not explain. The barrier
    /// below asserts what matters, that blocked child tasks do not hold one another up.)
    @Test func aTestRunsOnThePoolsThreads() async {
        #expect(currentThreadName().hasPrefix("test-pool-"), "\(currentThreadName())")
    }

    /// Eight tasks on the pool each block their thread until all eight have arrived (a barrier, given up after 30 s):
    /// with only as many threads as cores, the first ones would hold every thread and the others would never start.
    /// (The pool is named for each child, not only inherited: see the note above.)
    @Test func eightBlockedTasksAllArrive() async {
        let barrier = Barrier(parties: 8)
        let arrived = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<8 { group.addTask(executorPreference: BlockingTestPool.shared) { barrier.arriveAndWait(seconds: 30) } }
            return await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        #expect(arrived == 8)
    }
}

/// The kernel's name of the calling thread (a thread started by another inherits that one's name until it sets its own).
private func currentThreadName() -> String {
    ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
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
