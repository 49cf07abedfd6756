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

    /// The send-window and deadline cutoff's path (issue 21): requests waiting at their pace, whose gate closes before
    /// the pace lets them go, are refused unsent; the server sees only those that left before; and the pace hears
    /// `done()` for every request it admitted, refused ones included, so no slot on the wire is lost.
    @Test func requestsWaitingAtThePaceWhenTheGateClosesNeverLeave() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let open = Atomic<Bool>(true)
        let pace = HeldPace()
        let log = RoundLog()
        f.engine.start((0..<4).map { HTTPRequest(url: f.url("/small?i=\($0)")) }, round: log, gate: { open.load(ordering: .acquiring) },
                       pace: pace) { i, result in
            let text: String
            switch result {
            case .success(let r): text = "\(r.status)"
            case .failure(.fenced): text = "fenced"
            case .failure(let e): text = "\(e)"
            }
            // The first answer closes the gate (its cutoff passed): the three behind it are still at the pace.
            open.store(false, ordering: .releasing)
            pace.release()
            log.state.withLock { $0.answers[i, default: []].append(text) }
        }
        #expect(await pollUntil(within: 10) { f.engine.inFlight == 0 })
        let answers = log.state.withLock { $0.answers }
        #expect(answers[0] == ["200"], "\(answers)")
        #expect((1..<4).allSatisfy { answers[$0] == ["fenced"] }, "\(answers)")
        #expect(f.service.smallHandlerCalls.load(ordering: .relaxed) == 1, "a request refused at its gate reached the server")
        #expect(pace.counts == (admitted: 4, done: 4), "every request the pace let go was handed back: \(pace.counts)")
        #expect(pace.asked > 4, "the requests behind the first waited at the pace: asked \(pace.asked) times")
    }
}

/// A pace that lets the first request go and holds the rest (asked again every 20 ms) until `release()`; it counts
/// what it admitted and got back.
final class HeldPace: SendPace {
    private struct State { var released = false; var admitted = 0; var done = 0; var asked = 0 }
    private let state = Mutex(State())

    func admit(cost: Int) -> Int64? {
        state.withLock { s in
            s.asked += 1
            guard s.admitted == 0 || s.released else { return 20 }
            s.admitted += 1
            return nil
        }
    }

    func done() { state.withLock { $0.done += 1 } }
    func release() { state.withLock { $0.released = true } }

    var counts: (admitted: Int, done: Int) { state.withLock { ($0.admitted, $0.done) } }
    var asked: Int { state.withLock { $0.asked } }
}
