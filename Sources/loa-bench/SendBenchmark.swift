import Foundation
import LoaCarriers
import LoaCore
import Synchronization

/// The sending path without the store or the dispatcher: the Kannel adapter and the curl engine, `inFlight`
/// messages at a time, each started as the dispatcher starts one (``OneExchangeAdapter/start(_:completion:)``,
/// from a plain thread when the previous one finishes). `loa-bench send` prints it next to the daemon's figure, so the
/// cost of the store and the dispatcher can be told from the cost of the HTTP path.
public enum SendBenchmark {
    public static func run(url: String, count: Int, inFlight: Int, post: Bool) throws -> (accepted: Int, seconds: Double) {
        let engine = try CurlEngine(maxConnectionsPerHost: inFlight, maxTotalConnections: max(256, inFlight))
        defer { engine.shutdown() }
        let adapter = KannelAdapter(name: "k", sendsmsURL: url, username: "u", password: "x", timeout: 15, engine: engine, usePOST: post)
        final class Progress: Sendable {
            let state = Mutex((started: 0, done: 0, accepted: 0))
            let cond = NSCondition()
            func finished(_ outcome: GatewayOutcome) {
                cond.lock()
                state.withLock { s in
                    s.done += 1
                    if case .accepted = outcome { s.accepted += 1 }
                }
                cond.signal()
                cond.unlock()
            }
        }
        let progress = Progress()
        let total = count
        @Sendable func launch() {
            let next = progress.state.withLock { s -> Int? in
                guard s.started < total else { return nil }
                s.started += 1
                return s.started
            }
            guard let i = next else { return }
            let sms = OutgoingSMS(id: Int64(i), from: "LOA", to: "+8491\(String(1_000_000 + i % 1_000_000).dropFirst())", text: "Moi gop y du thao tren VNeID",
                                  encoding: .gsm7, segments: 1, receiptURL: "http://127.0.0.1:1/dlr/k?k=secret&st=%d&id=\(i)")
            adapter.start(sms) { progress.finished($0) }
        }
        let started = Date()
        for _ in 0..<min(inFlight, count) { launch() }
        // Like the dispatcher: a plain thread waits for finished requests and starts as many new ones.
        var seen = 0
        progress.cond.lock()
        while true {
            let done = progress.state.withLock { $0.done }
            if done >= count { break }
            if done == seen { _ = progress.cond.wait(until: Date(timeIntervalSinceNow: 1)) }
            let now = progress.state.withLock { $0.done }
            progress.cond.unlock()
            for _ in seen..<now { launch() }
            progress.cond.lock()
            seen = now
        }
        progress.cond.unlock()
        return (progress.state.withLock { $0.accepted }, Date().timeIntervalSince(started))
    }
}
