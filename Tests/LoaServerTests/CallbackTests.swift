import Foundation
import LoaCarriers
import LoaServer
import Synchronization
import Testing

/// `CurlEngine.start(_:completion:)`: the dispatcher's way to send without a task per message.
extension HTTPEngineTests {
    /// The name of the calling thread, as the OS knows it.
    private static func threadName() -> String {
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
}
