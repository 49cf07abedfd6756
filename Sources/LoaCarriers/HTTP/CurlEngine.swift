import CCurl
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An HTTP client: one libcurl multi handle driven by one dedicated thread.
///
/// Callers on any task submit requests into a lock-protected queue and suspend; the engine
/// thread adds them to the multi handle, runs `curl_multi_perform` / `curl_multi_poll`, and
/// resumes each caller's continuation when its transfer completes. Connections are kept alive
/// in the multi handle's pool and shared by all requests (at most `maxConnectionsPerHost` per
/// host; further requests wait inside libcurl for a free connection).
///
/// Contract:
/// - `perform` MUST return a response for every request that got one (any status) and MUST
///   throw only ``TransportError`` otherwise.
/// - Cancelling the calling task aborts the transfer; `perform` then throws
///   `.other(code: 42, …)` (``TransportError/isCancellation``).
/// - ``shutdown()`` fails every queued and in-flight request with `.shutdown`; later calls to
///   `perform` throw `.shutdown` at once.
/// - Error messages never contain the URL's query string or user info.
///
/// https://curl.se/libcurl/c/libcurl-multi.html
public final class CurlEngine: Sendable {
    private let shared: EngineShared

    /// Starts the engine thread.
    /// - Parameters:
    ///   - maxConnectionsPerHost: `CURLMOPT_MAX_HOST_CONNECTIONS`.
    ///   - maxTotalConnections: `CURLMOPT_MAX_TOTAL_CONNECTIONS` and the idle pool size
    ///     (`CURLMOPT_MAXCONNECTS`).
    /// - Throws: only ``TransportError``.
    public init(maxConnectionsPerHost: Int = 64, maxTotalConnections: Int = 256) throws(TransportError) {
        let multi = try MultiHandle()
        try multi.set(CURLMOPT_MAX_HOST_CONNECTIONS, max(1, maxConnectionsPerHost))
        try multi.set(CURLMOPT_MAX_TOTAL_CONNECTIONS, max(1, maxTotalConnections))
        try multi.set(CURLMOPT_MAXCONNECTS, max(1, maxTotalConnections))
        shared = EngineShared(multi: multi)
        let loop = CurlLoop(shared: shared, multi: multi, maxIdleHandles: max(1, maxTotalConnections))
        var thread = pthread_t()
        let context = Unmanaged.passRetained(loop).toOpaque()
        let rc = pthread_create(&thread, nil, curlEngineThreadMain, context)
        guard rc == 0 else {
            Unmanaged<CurlLoop>.fromOpaque(context).release()
            throw .other(code: Int(CURLE_FAILED_INIT.rawValue), message: "pthread_create failed: \(rc)")
        }
        shared.state.withLock { $0.thread = thread }
    }

    deinit { shutdown() }

    /// Performs one request. Throws only ``TransportError``.
    public func perform(_ request: HTTPRequest) async throws(TransportError) -> HTTPResponse {
        try await submit(request, upload: nil)
    }

    /// Performs `request` with the contents of the file at `path` as its body, read in pieces
    /// by `CURLOPT_READFUNCTION` so the file is never held in memory.
    ///
    /// The method is `request.method`, or `PUT` when that is `GET`; `request.body` is ignored.
    /// A regular file is sent with `Content-Length`; anything else (a pipe) is sent chunked. A
    /// `Transfer-Encoding: chunked` header forces chunked. Reads happen on the engine thread, so
    /// the source must not block for long (a regular file never does).
    /// - Throws: only ``TransportError``; a file that cannot be opened is
    ///   `.other(code: 26 /* CURLE_READ_ERROR */, …)`.
    public func perform(_ request: HTTPRequest, uploadFile path: String) async throws(TransportError) -> HTTPResponse {
        let file = try UploadFile(path: path)
        return try await submit(request, upload: file)
    }

    /// Fails queued and in-flight requests with `.shutdown` and joins the engine thread.
    /// Idempotent; a concurrent second call returns without waiting for the join.
    public func shutdown() {
        let thread = shared.state.withLock { state -> pthread_t? in
            state.stopping = true
            defer { state.thread = nil }
            return state.thread
        }
        shared.multi.wakeup()
        if let thread { pthread_join(thread, nil) }
    }

    /// Starts one request and returns at once; `completion` gets the answer or the ``TransportError``, exactly
    /// once: on the engine thread, or on the caller's at once if the engine is shut down (`.shutdown`). For
    /// callers that run no task per request (the dispatcher): no continuation, no hop through Swift's
    /// executor. `completion` MUST NOT block: on the engine thread it delays every other transfer.
    public func start(_ request: HTTPRequest, completion: @escaping @Sendable (Result<HTTPResponse, TransportError>) -> Void) {
        let id = shared.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        shared.enqueue(CurlSubmission(id: id, request: request, upload: nil, continuation: .callback(completion)))
    }

    /// Starts `requests` in one hand-over (one lock, at most one wake-up of the engine thread) and returns at once.
    /// `completion` gets each request's index in `requests` and its answer, exactly once per request, as
    /// ``start(_:completion:)`` does; after the completions of one engine round (every answer read from one
    /// `curl_multi_perform`), `round` is told once (``CompletionRound/roundEnded()``), so a caller that gathers the
    /// answers hands them on in one piece instead of one by one. At shutdown the requests fail with `.shutdown`,
    /// followed by a round end as well. `completion` and the round end MUST NOT block.
    ///
    /// `gate` (nil: none), when given, is asked on the engine thread for each request: before its handle is added,
    /// and again in libcurl's pre-request callback (`CURLOPT_PREREQFUNCTION`), after the connection is made and just
    /// before the first byte of the request is written, so a request that waited inside libcurl for a free
    /// connection is asked too. A refusal fails the request with ``TransportError/fenced(_:)``: nothing was sent.
    /// It MUST be cheap and MUST NOT block (a cluster node's lease check: an atomic read and a clock read).
    ///
    /// `pace` (nil: none), when given, is asked on the engine thread before each request's handle is added (with its
    /// cost from `costs`, by index; 1 when not given), in the
    /// order the requests came: a request it does not admit yet waits in the engine (before the gate is asked) for
    /// the time it names, and the requests behind it with the same pace wait too. So the gateway sees the pace's
    /// schedule, not the caller's: whatever delayed the hand-over (a claim's transaction) does not bunch requests.
    public func start(_ requests: [HTTPRequest], round: any CompletionRound, gate: (@Sendable () -> Bool)? = nil,
                      pace: (any SendPace)? = nil, costs: [Int]? = nil,
                      completion: @escaping @Sendable (Int, Result<HTTPResponse, TransportError>) -> Void) {
        guard !requests.isEmpty else { return }
        let first = shared.nextID.wrappingAdd(UInt64(requests.count), ordering: .relaxed).oldValue
        var submissions: [CurlSubmission] = []
        submissions.reserveCapacity(requests.count)
        for (i, request) in requests.enumerated() {
            submissions.append(CurlSubmission(id: first &+ UInt64(i), request: request, upload: nil,
                                              continuation: .indexed(i, completion, round), gate: gate, pace: pace,
                                              cost: costs.flatMap { i < $0.count ? $0[i] : nil } ?? 1))
        }
        shared.enqueue(submissions)
    }

    /// Requests submitted and not yet completed (queued, waiting for a connection, or on the wire).
    public var inFlight: Int { shared.state.withLock { $0.inFlight } }

    private func submit(_ request: HTTPRequest, upload: UploadFile?) async throws(TransportError) -> HTTPResponse {
        let id = shared.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let shared = self.shared
        let result = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<HTTPResponse, TransportError>, Never>) in
                shared.enqueue(CurlSubmission(id: id, request: request, upload: upload, continuation: .task(continuation)))
            }
        } onCancel: {
            shared.cancel(id)
        }
        return try result.get()
    }
}

/// Told after the answers of one engine round to requests started with it (``CurlEngine/start(_:round:completion:)``):
/// a caller that gathers answers as they come hands them on here, once per round, rather than once per answer
/// (one lock and one wake-up of its own thread for all of them). Called on the engine thread, or on the caller's
/// when the engine is shut down; it MUST NOT block.
public protocol CompletionRound: AnyObject, Sendable {
    func roundEnded()
}

/// Who waits for a request: a suspended task or a callback. Resumed exactly once, by whoever removes the
/// submission from the queue (a cancel, the shutdown) or its transfer from the loop.
enum CurlCompletion: Sendable {
    /// Unchecked: the checked kind costs an allocation and an atomic exchange per request.
    case task(UnsafeContinuation<Result<HTTPResponse, TransportError>, Never>)
    case callback(@Sendable (Result<HTTPResponse, TransportError>) -> Void)
    /// One of several requests started together: its index among them, their shared completion, and who hears
    /// of the end of each round (one closure for all of them, not one per request).
    case indexed(Int, @Sendable (Int, Result<HTTPResponse, TransportError>) -> Void, any CompletionRound)

    func resume(returning result: Result<HTTPResponse, TransportError>) {
        switch self {
        case .task(let continuation): continuation.resume(returning: result)
        case .callback(let completion): completion(result)
        case .indexed(let index, let completion, _): completion(index, result)
        }
    }

    /// Who hears of the end of the round this completion ran in, if anyone.
    var round: (any CompletionRound)? {
        if case .indexed(_, _, let round) = self { return round }
        return nil
    }
}

/// The distinct ``CompletionRound``s of one engine round, in the order first seen, each told once at its end.
/// Nearly always one or none: a linear scan by identity beats hashing.
struct RoundEnds {
    private(set) var pending: [any CompletionRound] = []

    mutating func note(_ completion: CurlCompletion) {
        guard let round = completion.round, !pending.contains(where: { $0 === round }) else { return }
        pending.append(round)
    }

    /// Tells each noted round that it ended, and forgets them.
    mutating func endAll() {
        guard !pending.isEmpty else { return }
        for round in pending { round.roundEnded() }
        pending.removeAll(keepingCapacity: true)
    }
}

/// A request handed from a submitting task to the engine thread.
struct CurlSubmission: Sendable {
    let id: UInt64
    let request: HTTPRequest
    let upload: UploadFile?
    let continuation: CurlCompletion
    /// Asked on the engine thread before the request's handle is added and just before it is sent; false: it is
    /// never sent (``TransportError/fenced(_:)``).
    var gate: (@Sendable () -> Bool)? = nil
    /// Admits the request to leave (nil: at once); see ``SendPace``.
    var pace: (any SendPace)? = nil
    /// The request's units for its pace (``SendPace/admit(cost:)``).
    var cost = 1
}

/// When requests may leave: asked on the engine thread just before a request's handle is added, so the gateway
/// sees the pace's schedule whatever delayed the request on its way to the engine (issue 21: a carrier's rate and
/// burst measured at the gateway). One object per stream of requests paced together (a carrier).
public protocol SendPace: AnyObject, Sendable {
    /// Takes one request's permission now, `cost` its units (a message's SMS parts; 1 when the submitter gave
    /// none): nil when it may leave, else the milliseconds (at least 1) after which to ask again (an answer that
    /// comes meanwhile makes the engine ask at once). MUST be cheap and MUST NOT block (it runs on the engine thread).
    func admit(cost: Int) -> Int64?
    /// A request it admitted is over (answered, failed, or refused by the gate): for a pace that also bounds the
    /// requests on the wire. Called on the engine thread, once per admitted request; MUST NOT block.
    func done()
}

/// The error a cancelled request fails with.
func cancelledError(_ request: HTTPRequest) -> TransportError {
    .other(code: TransportError.cancelledCode, message: "\(request.method) \(redactedURL(request.url)): cancelled")
}

/// State shared by submitters and the engine thread; everything mutable is behind `state`.
final class EngineShared: Sendable {
    struct State {
        var queue: [CurlSubmission] = []
        var cancels: [UInt64] = []
        /// The engine thread is (about to be) blocked in `curl_multi_poll`; the next submitter
        /// clears it and calls `curl_multi_wakeup`.
        var sleeping = false
        var stopping = false
        var inFlight = 0
        var thread: pthread_t?
    }

    let state = Mutex(State())
    let multi: MultiHandle
    let nextID = Atomic<UInt64>(1)

    init(multi: MultiHandle) { self.multi = multi }

    func enqueue(_ submission: CurlSubmission) {
        enum Outcome { case queued(wake: Bool), rejected(TransportError) }
        let outcome = state.withLock { state -> Outcome in
            if state.stopping { return .rejected(.shutdown) }
            // Checked under the lock: cancellation sets the flag before running the handler,
            // so either the handler finds this submission queued or we see the flag here.
            if Task.isCancelled { return .rejected(cancelledError(submission.request)) }
            state.queue.append(submission)
            state.inFlight += 1
            defer { state.sleeping = false }
            return .queued(wake: state.sleeping)
        }
        switch outcome {
        case .queued(let wake):
            if wake { multi.wakeup() }
        case .rejected(let error):
            submission.continuation.resume(returning: .failure(error))
            var ends = RoundEnds()
            ends.note(submission.continuation)
            ends.endAll()
        }
    }

    /// Queues several submissions under one lock, with at most one wake-up; after shutdown fails them all at once
    /// (their rounds then end on the caller's thread). Submitted by a thread, never by a task: no cancellation.
    func enqueue(_ submissions: [CurlSubmission]) {
        let (queued, wake) = state.withLock { state -> (Bool, Bool) in
            if state.stopping { return (false, false) }
            state.queue.append(contentsOf: submissions)
            state.inFlight += submissions.count
            defer { state.sleeping = false }
            return (true, state.sleeping)
        }
        if wake { multi.wakeup() }
        guard !queued else { return }
        var ends = RoundEnds()
        for submission in submissions {
            submission.continuation.resume(returning: .failure(.shutdown))
            ends.note(submission.continuation)
        }
        ends.endAll()
    }

    func cancel(_ id: UInt64) {
        let (removed, wake) = state.withLock { state -> (CurlSubmission?, Bool) in
            if let index = state.queue.firstIndex(where: { $0.id == id }) {
                state.inFlight -= 1
                return (state.queue.remove(at: index), false)
            }
            guard !state.stopping else { return (nil, false) }
            // In flight, already finished, or never submitted: the engine thread ignores ids it
            // does not know.
            state.cancels.append(id)
            defer { state.sleeping = false }
            return (nil, state.sleeping)
        }
        if let removed { removed.continuation.resume(returning: .failure(cancelledError(removed.request))) }
        if wake { multi.wakeup() }
    }
}

/// An open file to upload; closed when the transfer is done with it.
final class UploadFile: Sendable {
    let fd: Int32
    /// Byte count of a regular file; nil (sent chunked) otherwise.
    let size: Int64?
    let path: String

    init(path: String) throws(TransportError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw .other(code: Int(CURLE_READ_ERROR.rawValue), message: "cannot open upload file \(path): \(posixErrorText())")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let message = posixErrorText()
            close(fd)
            throw .other(code: Int(CURLE_READ_ERROR.rawValue), message: "cannot stat upload file \(path): \(message)")
        }
        self.fd = fd
        self.path = path
        size = (info.st_mode & S_IFMT) == S_IFREG ? Int64(info.st_size) : nil
    }

    deinit { close(fd) }
}

func posixErrorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }
