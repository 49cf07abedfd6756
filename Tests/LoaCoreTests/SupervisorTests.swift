import Foundation
import Synchronization
import Testing
@testable import LoaCore

@Suite struct SupervisorTests {
    struct Refused: Error {}

    /// What the parts did, in order: "start a", "stop a", ….
    final class Journal: Sendable {
        private let entries = Mutex<[String]>([])
        func add(_ e: String) { entries.withLock { $0.append(e) } }
        var all: [String] { entries.withLock { $0 } }
    }

    func part(_ group: Supervisor, _ name: String, _ journal: Journal, stopWithin: Double = 10, stop: (@Sendable () -> Void)? = nil) throws {
        try group.start(name, failure: "cannot start \(name)", stopWithin: stopWithin, { journal.add("start \(name)") },
                        stop: { _ in stop?(); journal.add("stop \(name)") })
    }

    @Test func startsInOrderAndStopsInReverseOnce() throws {
        let journal = Journal()
        let group = Supervisor(logger: Logger(label: "test", handler: CollectingLogHandler()))
        for name in ["store", "engine", "server", "dispatcher"] { try part(group, name, journal) }
        #expect(group.stop() == [])
        #expect(journal.all == ["start store", "start engine", "start server", "start dispatcher",
                                "stop dispatcher", "stop server", "stop engine", "stop store"])
        #expect(group.stop() == [])
        #expect(journal.all.count == 8, "a second stop stops nothing again")
        #expect(throws: Supervisor.StartFailure.self) { try part(group, "late", journal) }
        #expect(journal.all.count == 8, "nothing starts after the stop")
    }

    @Test func aFailedStartStopsWhatStartedInReverse() throws {
        let journal = Journal()
        let logs = CollectingLogHandler()
        let group = Supervisor(logger: Logger(label: "test", handler: logs))
        try part(group, "store", journal)
        try part(group, "engine", journal)
        #expect(throws: Supervisor.StartFailure.self) {
            try group.start("server", failure: "cannot listen", metadata: ["listen.port": "1"], stopWithin: 10,
                            { () throws -> Int in throw Refused() }, stop: { _ in journal.add("stop server") })
        }
        #expect(journal.all == ["start store", "start engine", "stop engine", "stop store"])
        let failure = try #require(logs.records.first { $0.message == "cannot listen" })
        #expect(failure.level == .error && failure.metadata["listen.port"] == "1" && failure.metadata["error"] != nil)
        #expect(group.stop() == [], "the failed start already stopped the group")
        #expect(journal.all.count == 4)
    }

    @Test func aFailedStepStopsWhatStarted() throws {
        let journal = Journal()
        let group = Supervisor(logger: Logger(label: "test", handler: CollectingLogHandler()))
        try part(group, "store", journal)
        #expect(throws: Supervisor.StartFailure.self) { try group.step("prepare", failure: "cannot prepare") { throw Refused() } }
        #expect(journal.all == ["start store", "stop store"])
    }

    /// A part stuck in its stop is left behind at its deadline, named in the result and the log; the parts
    /// before it are stopped all the same.
    @Test func aStuckPartDoesNotHoldUpTheStop() throws {
        let journal = Journal()
        let logs = CollectingLogHandler()
        let group = Supervisor(logger: Logger(label: "test", handler: logs))
        let gate = Gate()
        gate.release(after: 5)
        try part(group, "store", journal)
        try part(group, "dispatcher", journal, stopWithin: 0.1, stop: { gate.pass() })
        try part(group, "poller", journal)
        let start = MonotonicDeadline.now()
        #expect(group.stop() == ["dispatcher"])
        #expect(MonotonicDeadline.now().nanoseconds - start.nanoseconds < 3_000_000_000)
        #expect(journal.all == ["start store", "start dispatcher", "start poller", "stop poller", "stop store"])
        #expect(logs.records.contains { $0.level == .error && $0.metadata["part"] == "dispatcher" })
    }
}
