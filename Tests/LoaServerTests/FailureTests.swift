import LoaCarriers
import LoaServer
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension HTTPEngineTests {
    @Test func connectionRefusedIsCouldNotConnect() async throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let closed = boundSocket(listening: false)  // bound, not listening: connects are refused
        defer { close(closed.fd) }
        let url = "http://user:hunter2@127.0.0.1:\(closed.port)/send?api_key=SECRET123&to=%2B15550100"
        do {
            _ = try await engine.perform(HTTPRequest(url: url))
            Issue.record("expected a failure")
        } catch {
            guard case .couldNotConnect(let message) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(message.contains("127.0.0.1:\(closed.port)/send?***"))
            #expect(!message.contains("SECRET123") && !message.contains("hunter2") && !message.contains("15550100"))
        }
    }

    @Test func serverThatNeverAnswersTimesOut() async throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let silent = boundSocket(listening: true)  // the kernel accepts, nobody reads or answers
        defer { close(silent.fd) }
        let clock = ContinuousClock()
        let started = clock.now
        do {
            _ = try await engine.perform(HTTPRequest(url: "http://127.0.0.1:\(silent.port)/x?token=SECRET", timeout: 0.5))
            Issue.record("expected a timeout")
        } catch {
            guard case .timedOut(let message) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(!message.contains("SECRET"))
        }
        let elapsed = clock.now - started
        #expect(elapsed >= .milliseconds(450))
        // Not a timing assertion: only that the request ended instead of hanging (the machine may be slow).
        #expect(elapsed < .seconds(60))
    }

    @Test func shutdownFailsPendingRequests() async throws {
        let f = try EngineServerFixture(maxConnectionsPerHost: 2)
        defer { f.close() }
        let engine = f.engine
        let url = f.url("/block")
        let tasks = (0..<4).map { _ in
            Task { () -> Result<HTTPResponse, TransportError> in
                do throws(TransportError) {
                    return .success(try await engine.perform(HTTPRequest(url: url)))
                } catch {
                    return .failure(error)
                }
            }
        }
        // Two requests block in the handler, two wait for a connection inside libcurl.
        #expect(await pollUntil { f.service.gate.entered.load(ordering: .relaxed) == 2 && engine.inFlight == 4 })
        engine.shutdown()
        for task in tasks {
            let result = await task.value
            #expect(result.failure == .shutdown)
        }
        #expect(engine.inFlight == 0)
        await #expect(throws: TransportError.shutdown) { _ = try await engine.perform(HTTPRequest(url: url)) }
        engine.shutdown()  // idempotent
    }

    @Test func cancellationAbortsTheTransfer() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let engine = f.engine
        let url = f.url("/block")
        let task = Task { try await engine.perform(HTTPRequest(url: url)) }
        #expect(await pollUntil { f.service.gate.entered.load(ordering: .relaxed) == 1 })
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("expected cancellation")
        } catch {
            #expect((error as? TransportError)?.isCancellation == true)
        }
        #expect(engine.inFlight == 0)
        // Cancelled before it starts: never sent.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await engine.perform(HTTPRequest(url: url))
        }
        await #expect(throws: TransportError.self) { _ = try await early.value }
        #expect(f.service.gate.entered.load(ordering: .relaxed) == 1)
    }

    @Test func serverStopWaitsForBlockedHandler() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let engine = f.engine
        let server = f.server
        let gate = f.service.gate
        let blocked = Task { try await engine.perform(HTTPRequest(url: f.url("/block"))) }
        #expect(await pollUntil { gate.entered.load(ordering: .relaxed) == 1 })

        let stopReturned = ThreadShared(false)
        let returnedBeforeStop = ThreadShared(-1)
        let stopper = runOnThread {
            server.stop()
            returnedBeforeStop.set(gate.returned.load(ordering: .sequentiallyConsistent))
            stopReturned.set(true)
        }
        // New connections are refused while the handler is still blocked...
        #expect(await pollUntil {
            guard let fd = connectLoopback(server.port) else { return true }
            close(fd)
            return false
        })
        do {
            _ = try await engine.perform(HTTPRequest(url: f.url("/hello"), timeout: 5))
            Issue.record("expected a refusal")
        } catch {
            guard case .couldNotConnect = error else { Issue.record("unexpected \(error)"); return }
        }
        // ...and stop() is still waiting for it.
        let stillStopping = !stopReturned.get()
        #expect(stillStopping)

        gate.open()
        let response = try await blocked.value
        #expect(response.status == 200 && response.bodyText == "released")
        #expect(await pollUntil(within: 10) { stopReturned.get() })
        pthread_join(stopper, nil)
        #expect(returnedBeforeStop.get() == 1)
        server.stop()  // idempotent
    }
}

/// A value shared with another thread.
final class ThreadShared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func get() -> Value { value.withLock { $0 } }
    func set(_ newValue: Value) { value.withLock { $0 = newValue } }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
