import Foundation
import LoaCarriers
import LoaServer
import Synchronization
import Testing

/// `CurlEngine.start(_:completion:)`: the dispatcher's way to send without a task per message.
extension HTTPEngineTests {
    /// The name of the calling thread, as the OS knows it.
    static func threadName() -> String {
        ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func startCallsItsCompletionOnceOnTheEngineThread() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let count = 500
        let results = Mutex<[Int: [String]]>([:])  // request number → (status:body@thread) per call
        for i in 0..<count {
            f.engine.start(HTTPRequest(url: f.url("/echo?i=\(i)"))) { result in
                let text: String
                switch result {
                case .success(let r): text = "\(r.status):\(r.bodyText)@\(Self.threadName())"
                case .failure(let e): text = "\(e)"
                }
                results.withLock { $0[i, default: []].append(text) }
            }
        }
        #expect(await pollUntil(within: 30) { results.withLock { $0.count } == count && f.engine.inFlight == 0 })
        let all = results.withLock { $0 }
        #expect(all.count == count)
        for i in 0..<count { #expect(all[i] == ["200:\(i)@loa-curl"]) }
    }

    @Test func startFailsPendingRequestsOnceAtShutdown() async throws {
        let f = try EngineServerFixture(maxConnectionsPerHost: 2)
        defer { f.close() }
        let calls = Mutex<[Result<HTTPResponse, TransportError>]>([])
        for _ in 0..<4 {
            f.engine.start(HTTPRequest(url: f.url("/block"))) { result in calls.withLock { $0.append(result) } }
        }
        // Two requests block in the handler, two wait for a connection inside libcurl.
        #expect(await pollUntil { f.service.gate.entered.load(ordering: .relaxed) == 2 && f.engine.inFlight == 4 })
        f.engine.shutdown()
        #expect(calls.withLock { $0.count } == 4)
        #expect(calls.withLock { $0.allSatisfy { $0.failure == .shutdown } })
        // After shutdown: failed at once, on the caller's thread.
        f.engine.start(HTTPRequest(url: f.url("/hello"))) { result in calls.withLock { $0.append(result) } }
        #expect(calls.withLock { $0.count } == 5 && calls.withLock { $0.last?.failure } == .shutdown)
    }

    /// Counts the answers of a batch start and, at each round end, how many had come by then.
    final class RoundLog: CompletionRound {
        struct Entry { var answers: [Int: [String]] = [:]; var endsAfter: [Int] = []; var endThreads: Set<String> = [] }
        let state = Mutex(Entry())
        func roundEnded() {
            let thread = HTTPEngineTests.threadName()
            state.withLock { s in
                s.endsAfter.append(s.answers.values.reduce(0) { $0 + $1.count })
                s.endThreads.insert(thread)
            }
        }
    }

    /// One hand-over of many requests: every answer once, by index, on the engine thread; the round ends come after
    /// the answers of their round (the last after the last answer), fewer of them than answers, never one for no answer.
    @Test func startOfManyAnswersEachOnceAndEndsEachRoundAfterItsAnswers() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let count = 500
        let log = RoundLog()
        f.engine.start((0..<count).map { HTTPRequest(url: f.url("/echo?i=\($0)")) }, round: log) { i, result in
            let text: String
            switch result {
            case .success(let r): text = "\(r.status):\(r.bodyText)@\(Self.threadName())"
            case .failure(let e): text = "\(e)"
            }
            log.state.withLock { $0.answers[i, default: []].append(text) }
        }
        #expect(await pollUntil(within: 30) { log.state.withLock { $0.endsAfter.last } == count && f.engine.inFlight == 0 })
        let s = log.state.withLock { $0 }
        #expect(s.answers.count == count)
        for i in 0..<count { #expect(s.answers[i] == ["200:\(i)@loa-curl"]) }
        #expect(s.endThreads == ["loa-curl"])
        // Strictly growing: each round end follows at least one new answer.
        #expect(zip(s.endsAfter, s.endsAfter.dropFirst()).allSatisfy { $0 < $1 } && s.endsAfter.first.map { $0 > 0 } == true)
        #expect(s.endsAfter.count < count)
    }

    /// After shutdown a batch start fails every request with `.shutdown` at once, on the caller's thread, and its
    /// round ends there too (a caller that gathers answers until the round end loses none).
    @Test func startOfManyAfterShutdownFailsThemAndEndsTheRound() async throws {
        let f = try EngineServerFixture()
        f.close()
        let log = RoundLog()
        f.engine.start((0..<3).map { HTTPRequest(url: f.url("/echo?i=\($0)")) }, round: log) { i, result in
            log.state.withLock { $0.answers[i, default: []].append(result.failure == .shutdown ? "shutdown" : "\(result)") }
        }
        let s = log.state.withLock { $0 }
        #expect(s.answers == [0: ["shutdown"], 1: ["shutdown"], 2: ["shutdown"]])
        #expect(s.endsAfter == [3])
        #expect(!s.endThreads.contains("loa-curl"))
    }
}
