import Foundation
import LoaCarriers
import LoaServer
import Synchronization
import Testing

/// The engine's pace (issue 21: a carrier's rate and burst measured at the gateway): requests started together leave
/// on the pace's schedule, held in the engine, not when they were handed over; the pace hears of each one's end.
extension HTTPEngineTests {
    /// Admits one request per `spacing`, and says how long the next must wait.
    final class SpacedPace: SendPace {
        let spacing: Duration
        let admitted = Mutex<[ContinuousClock.Instant]>([])
        let over = Atomic<Int>(0)
        init(spacing: Duration) { self.spacing = spacing }
        func done() { over.add(1, ordering: .relaxed) }
        func admit(cost: Int) -> Int64? {
            let now = ContinuousClock.now
            return admitted.withLock { list in
                if let last = list.last, now < last + spacing {
                    let (s, atto) = (last + spacing - now).components
                    return max(1, s * 1000 + atto / 1_000_000_000_000_000)
                }
                list.append(now)
                return nil
            }
        }
    }

    @Test func pacedRequestsReachTheServerOnThePacesScheduleInOrder() async throws {
        let f = try EngineServerFixture(maxConnectionsPerHost: 8)
        defer { f.close() }
        let pace = SpacedPace(spacing: .milliseconds(100))
        let log = RoundLog()
        let answered = Mutex<[(Int, ContinuousClock.Instant)]>([])
        let start = ContinuousClock.now
        f.engine.start((0..<5).map { HTTPRequest(url: f.url("/echo?i=\($0)")) }, round: log, pace: pace) { i, result in
            answered.withLock { $0.append((i, .now)) }
            let text: String
            switch result {
            case .success(let r): text = "\(r.status)"
            case .failure(let e): text = "\(e)"
            }
            log.state.withLock { $0.answers[i, default: []].append(text) }
        }
        #expect(await pollUntil(within: 10) { answered.withLock { $0.count } == 5 })
        let list = answered.withLock { $0 }
        #expect(list.map(\.0) == [0, 1, 2, 3, 4], "in the order handed over")
        for (i, at) in list {
            // The i-th waited for i spacings (a little less: the first admission comes a moment after the start).
            #expect(at - start >= .milliseconds(100 * i - 20), "request \(i) answered \(at - start) after the hand-over")
        }
        #expect(log.state.withLock { $0.answers.values.flatMap { $0 } } == Array(repeating: "200", count: 5))
        #expect(f.engine.inFlight == 0)
        #expect(await pollUntil { pace.over.load(ordering: .relaxed) == 5 }, "every admitted request is reported over once")
    }
}
