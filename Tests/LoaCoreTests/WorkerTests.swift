import Foundation
import Synchronization
import Testing
@testable import LoaCore

/// Polls `condition` until it holds or `seconds` pass; true when it held.
func eventually(within seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = MonotonicDeadline.after(seconds: seconds)
    while !deadline.hasPassed {
        if condition() { return true }
        usleep(1_000)
    }
    return condition()
}

/// A latch a test opens to let a stuck body go.
final class Gate: Sendable {
    private let open = ConditionBox(false)
    func release() { open.withLockWaking { $0 = true; return true } }
    func pass() { _ = open.wait(until: nil) { $0 ? true : nil } }

    /// Opens the gate after `seconds` at the latest: a watchdog, so that a stop that fails to give up at its
    /// deadline fails its test (too slow) instead of hanging the suite.
    func release(after seconds: Double) {
        Thread { [self] in
            _ = ConditionBox(false).wait(until: .after(seconds: seconds)) { $0 ? true : nil }
            release()
        }.start()
    }
}

@Suite struct WorkerTests {
    @Test func wakeRunsARoundAndStopEndsTheBody() {
        let worker = Worker(name: "loa-test-wake")
        let rounds = Mutex(0)
        worker.start { w in
            while w.wait() { rounds.withLock { $0 += 1 } }
        }
        #expect(rounds.withLock { $0 } == 0)
        worker.wake()
        #expect(eventually { rounds.withLock { $0 } == 1 })
        worker.wake()
        #expect(eventually { rounds.withLock { $0 } == 2 })
        #expect(worker.stop(by: .after(seconds: 10)))
        #expect(worker.isFinished)
        #expect(rounds.withLock { $0 } == 2, "a stop is not a round")
    }

    /// `busyFor` is nil while the body waits and counts from when it left its wait: the systemd watchdog reads it.
    @Test func busyForCountsOnlyTheRound() {
        let worker = Worker(name: "loa-test-busyf")
        let gate = Gate()
        let entered = Mutex(false)
        #expect(worker.busyFor == nil, "not started")
        worker.start { w in
            while w.wait() {
                entered.withLock { $0 = true }
                gate.pass()
            }
        }
        #expect(eventually { worker.busyFor == nil }, "waiting")
        worker.wake()
        #expect(eventually { entered.withLock { $0 } })
        #expect(eventually { (worker.busyFor ?? .zero) >= .milliseconds(50) }, "held in its round")
        gate.release()
        #expect(eventually { worker.busyFor == nil }, "waiting again")
        #expect(worker.stop(by: .after(seconds: 10)))
        #expect(worker.busyFor == nil, "returned")
    }

    /// A wake-up that comes while the body is busy is kept: its next wait returns at once.
    @Test func aWakeWhileBusyIsNotLost() {
        let worker = Worker(name: "loa-test-busy")
        let gate = Gate()
        let rounds = Mutex(0)
        let entered = Mutex(false)
        worker.start { w in
            while w.wait() {
                entered.withLock { $0 = true }
                gate.pass()
                rounds.withLock { $0 += 1 }
            }
        }
        worker.wake()
        #expect(eventually { entered.withLock { $0 } })
        // The body is held in its first round; this wake-up comes while it is busy.
        worker.wake()
        gate.release()
        #expect(eventually { rounds.withLock { $0 } == 2 })
        #expect(worker.stop(by: .after(seconds: 10)))
    }

    @Test func aWaitEndsAtItsDeadline() {
        let worker = Worker(name: "loa-test-wait")
        let result = Mutex<(Bool, UInt64)?>(nil)
        worker.start { w in
            let start = MonotonicDeadline.now()
            let running = w.wait(until: .after(seconds: 0.05))
            result.withLock { $0 = (running, MonotonicDeadline.now().nanoseconds - start.nanoseconds) }
        }
        #expect(eventually { result.withLock { $0 } != nil })
        let (running, waited) = result.withLock { $0 }!
        #expect(running, "no stop was asked for")
        #expect(waited >= 50_000_000)
        #expect(worker.stop(by: .after(seconds: 10)))
    }

    /// A body stuck (here on a gate, in the daemon in a C call) does not hold up its stop past the deadline, and
    /// the stop says it did not end.
    @Test func stopReturnsAtItsDeadlineWhenTheBodyIsStuck() {
        let worker = Worker(name: "loa-test-stuck")
        let gate = Gate()
        worker.start { _ in gate.pass() }
        gate.release(after: 5)
        let start = MonotonicDeadline.now()
        #expect(!worker.stop(by: .after(seconds: 0.1)))
        let took = MonotonicDeadline.now().nanoseconds - start.nanoseconds
        #expect(took >= 100_000_000 && took < 3_000_000_000)
        #expect(!worker.isFinished)
        gate.release()
        #expect(worker.stop(by: .after(seconds: 10)))
    }

    @Test func aStopBeforeStartReturnsAtOnce() {
        #expect(Worker(name: "loa-test-idle").stop(by: .after(seconds: 0)))
    }

    /// The thread carries the worker's name, as `top -H` shows it.
    @Test func theThreadIsNamed() throws {
        #if os(Linux)
        let worker = Worker(name: "loa-test-name")
        let name = Mutex<String?>(nil)
        worker.start { _ in
            let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
            name.withLock { $0 = comm.trimmingCharacters(in: .whitespacesAndNewlines) }
        }
        #expect(worker.stop(by: .after(seconds: 10)))
        #expect(name.withLock { $0 } == "loa-test-name")
        #endif
    }
}

@Suite struct ConditionBoxTests {
    @Test func aWaitSeesAChangeMadeWithAWakeUp() {
        let box = ConditionBox(0)
        let t = Thread { box.withLockWaking { $0 = 7; return true } }
        t.start()
        #expect(box.wait(until: .after(seconds: 10)) { $0 == 7 ? $0 : nil } == 7)
    }

    @Test func aWaitGivesUpAtItsDeadline() {
        let box = ConditionBox(0)
        #expect(box.wait(until: .after(seconds: 0.02)) { $0 == 1 ? true : nil } == nil)
    }
}
