import Foundation
import LoaCarriers
import LoaServer
import Synchronization
import Testing

/// The engine's gate (issue 21's fencing): a request its gate refuses never reaches the server, whether it is refused
/// before its handle is added or while it waits inside libcurl for a connection.
extension HTTPEngineTests {
    @Test func aGateThatClosesFencesRequestsWaitingForAConnectionAndTheServerNeverSeesThem() async throws {
        let f = try EngineServerFixture(maxConnectionsPerHost: 2)
        defer { f.close() }
        let open = Atomic<Bool>(true)
        let log = RoundLog()
        f.engine.start((0..<4).map { HTTPRequest(url: f.url("/block?i=\($0)")) }, round: log, gate: { open.load(ordering: .acquiring) }) { i, result in
            let text: String
            switch result {
            case .success(let r): text = "\(r.status)"
            case .failure(.fenced): text = "fenced"
            case .failure(let e): text = "\(e)"
            }
            log.state.withLock { $0.answers[i, default: []].append(text) }
        }
        // Two requests are in the handler; two wait inside libcurl for a connection, their handles added.
        #expect(await pollUntil { f.service.gate.entered.load(ordering: .relaxed) == 2 && f.engine.inFlight == 4 })
        open.store(false, ordering: .releasing)
        f.service.gate.open()
        #expect(await pollUntil(within: 10) { f.engine.inFlight == 0 })
        let answers = log.state.withLock { $0.answers.values.flatMap { $0 } }.sorted()
        #expect(answers == ["200", "200", "fenced", "fenced"])
        #expect(f.service.gate.entered.load(ordering: .relaxed) == 2, "a fenced request reached the server")

        // Closed from the start: refused before its handle is added.
        let later = RoundLog()
        f.engine.start([HTTPRequest(url: f.url("/block?i=9"))], round: later, gate: { open.load(ordering: .acquiring) }) { i, result in
            later.state.withLock { $0.answers[i, default: []].append(result.failure.map { "\($0)" } ?? "sent") }
        }
        #expect(await pollUntil { later.state.withLock { $0.answers[0] } != nil })
        #expect(later.state.withLock { $0.answers[0]?.first?.hasPrefix("not sent:") } == true)
        #expect(f.service.gate.entered.load(ordering: .relaxed) == 2)
    }
}
