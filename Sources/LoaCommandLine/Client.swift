import Foundation
import LoaDaemon
import LoaSim
import LoaCarriers
import LoaCore
import Synchronization

/// The CLI's side of the operator API.
struct APIClient {
    let base: String
    let token: String
    let engine: CurlEngine

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    func request(_ method: String, _ path: String, body: [UInt8] = [], contentType: String = "application/json",
                 timeout: Double = 300) async throws -> HTTPResponse {
        var headers = [HTTPHeader("Authorization", "Bearer \(token)")]
        if !body.isEmpty { headers.append(HTTPHeader("Content-Type", contentType)) }
        let r: HTTPResponse
        do {
            r = try await engine.perform(HTTPRequest(method: method, url: base + path, headers: headers, body: body, timeout: timeout))
        } catch {
            throw Failure(description: "cannot reach the daemon at \(base): \(error)")
        }
        return r
    }

    func upload(_ path: String, file: String) async throws -> HTTPResponse {
        let req = HTTPRequest(method: "PUT", url: base + path, headers: [HTTPHeader("Authorization", "Bearer \(token)"), HTTPHeader("Content-Type", "text/csv")], timeout: 3600)
        do {
            return try await engine.perform(req, uploadFile: file)
        } catch {
            throw Failure(description: "cannot upload \(file) to the daemon at \(base): \(error)")
        }
    }

    /// The `message` of a JSON error answer, or the body.
    static func errorText(_ r: HTTPResponse) -> String {
        if let o = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
           let e = o["error"] as? [String: Any], let m = e["message"] as? String {
            return "HTTP \(r.status): \(m)"
        }
        return "HTTP \(r.status): \(r.bodyText.prefix(500))"
    }
}

/// Runs async work from synchronous `main` on a non-cooperative thread, blocking the caller.
func blockingAwait<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let box = Mutex<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        let v = await body()
        box.withLock { $0 = v }
        done.signal()
    }
    done.wait()
    return box.withLock { $0! }
}

/// SIGTERM/SIGINT as events for a CLI command with something to undo (a half-loaded campaign), instead of the
/// default death. While installed the signals are ignored as such and delivered to a dispatch source; the
/// action registered with ``onSignal(_:)`` runs once, on the first one (at once if it came before).
/// ``uninstall()`` restores the default dispositions.
final class SignalInterrupt: @unchecked Sendable {
    // @unchecked: `sources` is written in init and read in uninstall, both on the command's thread; the rest is
    // behind the mutex.
    private let state = Mutex<(received: Int32?, action: (@Sendable () -> Void)?)>((nil, nil))
    private var sources: [any DispatchSourceSignal] = []
    private let signals: [Int32]

    init(signals: [Int32]) {
        self.signals = signals
        for s in signals {
            signal(s, SIG_IGN)  // a dispatch source only sees a signal the default action does not act on
            let source = DispatchSource.makeSignalSource(signal: s, queue: .global())
            source.setEventHandler { [weak self] in self?.fire(s) }
            source.resume()
            sources.append(source)
        }
    }

    /// The first signal received, if any.
    var received: Int32? { state.withLock { $0.received } }

    func onSignal(_ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { st -> Bool in
            st.action = action
            return st.received != nil
        }
        if now { action() }
    }

    private func fire(_ s: Int32) {
        let action = state.withLock { st -> (@Sendable () -> Void)? in
            guard st.received == nil else { return nil }
            st.received = s
            return st.action
        }
        action?()
    }

    func uninstall() {
        for source in sources { source.cancel() }
        sources.removeAll()
        for s in signals { signal(s, SIG_DFL) }
    }
}
