import CCurl
import LoaCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Entry point of the engine thread: takes ownership of the loop and runs it to shutdown.
func curlEngineThreadMain(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let context else { return nil }
    let loop = Unmanaged<CurlLoop>.fromOpaque(context).takeRetainedValue()
    nameThisThread("loa-curl")
    loop.run()
    return nil
}

/// The engine thread's state. Never leaves that thread (created before it starts, handed over
/// through an `Unmanaged` pointer).
final class CurlLoop {
    private let shared: EngineShared
    private let multi: MultiHandle
    private let maxIdleHandles: Int
    /// Transfers in the multi handle (each knows its index here; an easy handle finds its transfer through
    /// `CURLOPT_PRIVATE`, with no hashing per request).
    private var active: [CurlTransfer] = []
    /// Easy handles ready for the next request, with the options of their last one.
    private var idle: [CurlTransfer] = []
    /// Completions of this iteration, resumed after the bookkeeping lock is released.
    private var finished: [(CurlCompletion, Result<HTTPResponse, TransportError>)] = []
    /// Who hears of the end of this round, after its completions ran.
    private var roundEnds = RoundEnds()
    /// Submissions waiting for their ``SendPace`` to admit them, in the order they came.
    private var paced: [CurlSubmission] = []

    init(shared: EngineShared, multi: MultiHandle, maxIdleHandles: Int) {
        self.shared = shared
        self.multi = multi
        self.maxIdleHandles = maxIdleHandles
    }

    func run() {
        var incoming: [CurlSubmission] = []
        var cancels: [UInt64] = []
        var running: Int32 = 0
        while true {
            let stopping = shared.state.withLock { state in
                swap(&incoming, &state.queue)
                swap(&cancels, &state.cancels)
                return state.stopping
            }
            if stopping {
                stop(failing: paced + incoming)
                return
            }
            for submission in incoming {
                if submission.pace != nil { paced.append(submission) } else { start(submission) }
            }
            incoming.removeAll(keepingCapacity: true)
            let pacedWait = releasePaced()
            for id in cancels { cancel(id) }
            cancels.removeAll(keepingCapacity: true)

            do {
                try check(curl_multi_perform(multi.raw, &running), "curl_multi_perform")
            } catch {
                failAll(error)
            }
            collectCompletions()

            let completed = finished.count
            let sleep = shared.state.withLock { state in
                state.inFlight -= completed
                guard state.queue.isEmpty, state.cancels.isEmpty, !state.stopping else { return false }
                state.sleeping = true
                return true
            }
            resumeFinished()
            if sleep {
                // Returns on socket activity, libcurl's own timer, or curl_multi_wakeup.
                do {
                    // An answer may have made room for a paced request: ask its pace again at once.
                    let timeout = completed > 0 && !paced.isEmpty ? 0 : pacedWait.map { Int32(clamping: min(1000, $0)) } ?? 1000
                    try check(curl_multi_poll(multi.raw, nil, 0, timeout, nil), "curl_multi_poll")
                } catch {
                    failAll(error)
                }
            }
        }
    }

    // MARK: Transfers

    /// Starts the paced submissions their pace admits now, in order; one not admitted holds back those behind it
    /// with the same pace. Returns the milliseconds until the soonest pace may admit one (nil: none waits).
    private func releasePaced() -> Int64? {
        guard !paced.isEmpty else { return nil }
        var held: [ObjectIdentifier] = []
        var wait: Int64?
        var left: [CurlSubmission] = []
        for submission in paced {
            guard let pace = submission.pace else { continue }
            let key = ObjectIdentifier(pace)
            if !held.contains(key) {
                guard let after = pace.admit(cost: submission.cost) else {
                    start(submission)
                    continue
                }
                held.append(key)
                wait = min(wait ?? .max, max(1, after))
            }
            left.append(submission)
        }
        paced = left
        return wait
    }

    private func start(_ submission: CurlSubmission) {
        if let gate = submission.gate, !gate() {
            // Refused before it took a handle or a connection; the pre-request callback asks again later.
            finished.append((submission.continuation, .failure(fencedError(submission.request))))
            submission.pace?.done()
            return
        }
        let transfer: CurlTransfer
        if let reused = idle.popLast() {
            transfer = reused
        } else {
            do {
                transfer = CurlTransfer(easy: try EasyHandle())
            } catch {
                finished.append((submission.continuation, .failure(error)))
                submission.pace?.done()
                return
            }
        }
        do {
            try transfer.start(submission)
            try check(curl_multi_add_handle(multi.raw, transfer.easy.raw), "curl_multi_add_handle")
        } catch {
            finished.append((submission.continuation, .failure(error)))
            transfer.invalidate()
            recycle(transfer)
            return
        }
        transfer.slot = active.count
        active.append(transfer)
    }

    /// Drains `curl_multi_info_read`. A message's fields are read before
    /// `curl_multi_remove_handle`, which invalidates it.
    private func collectCompletions() {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi.raw, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle else { continue }
            let code = message.pointee.data.result
            guard let transfer = CurlTransfer.owner(of: handle), transfer.slot >= 0 else { continue }
            removeActive(transfer)
            let result = transfer.outcome(code)
            _ = curl_multi_remove_handle(multi.raw, handle)
            finished.append((transfer.continuation, result))
            recycle(transfer)
        }
    }

    private func cancel(_ id: UInt64) {
        // Rare (a cancelled task): a scan of the transfers in flight.
        guard let transfer = active.first(where: { $0.id == id }) else { return }
        removeActive(transfer)
        _ = curl_multi_remove_handle(multi.raw, transfer.easy.raw)
        finished.append((transfer.continuation, .failure(cancelledError(transfer.request))))
        transfer.invalidate()
        recycle(transfer)
    }

    private func failAll(_ error: TransportError) {
        for transfer in active {
            transfer.slot = -1
            _ = curl_multi_remove_handle(multi.raw, transfer.easy.raw)
            finished.append((transfer.continuation, .failure(error)))
            transfer.invalidate()
            recycle(transfer)
        }
        active.removeAll()
    }

    private func stop(failing queued: [CurlSubmission]) {
        failAll(.shutdown)
        for submission in queued { finished.append((submission.continuation, .failure(.shutdown))) }
        let completed = finished.count
        shared.state.withLock { $0.inFlight -= completed }
        resumeFinished()
        idle.removeAll()
    }

    private func resumeFinished() {
        for (continuation, result) in finished {
            continuation.resume(returning: result)
            roundEnds.note(continuation)
        }
        finished.removeAll(keepingCapacity: true)
        roundEnds.endAll()
    }

    /// Takes `transfer` out of ``active`` (the last one moves into its place).
    private func removeActive(_ transfer: CurlTransfer) {
        let index = transfer.slot
        transfer.slot = -1
        let last = active.removeLast()
        if last !== transfer {
            active[index] = last
            last.slot = index
        }
    }

    /// Keeps the transfer's easy handle (after it left the multi handle) for the next request; the
    /// request, its continuation and its file are released.
    private func recycle(_ transfer: CurlTransfer) {
        transfer.pace?.done()
        transfer.finish()
        if idle.count < maxIdleHandles { idle.append(transfer) }
    }
}

/// An easy handle and what libcurl points into while it runs a request. Reused from request to request:
/// the options every request shares are set once, and the handle is reset (`curl_easy_reset`) only when
/// the next request needs a different set of options or the last one failed (as a plain C multi client
/// does: re-adding a handle keeps its options). A reset frees and re-creates every option, and
/// `CURLOPT_PROTOCOLS_STR` is parsed again each time it is set.
final class CurlTransfer {
    let easy: EasyHandle
    private(set) var id: UInt64 = 0
    /// Its index in the loop's transfers in flight, or -1.
    var slot = -1
    private(set) var request = HTTPRequest(url: "")
    private var submission: CurlSubmission?
    private var upload: UploadFile?
    private let headerList = HeaderList()
    /// The request body, copied here so libcurl reads stable memory (`CURLOPT_POSTFIELDS`).
    private var postBody = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// How many times libcurl was about to send the current request (`CURLOPT_PREREQFUNCTION`): more than
    /// once means it is resending it by itself.
    private var sendAttempts = 0
    /// Bodies from this size keep libcurl's `Expect: 100-continue`.
    static let expectContinueFrom = 1 << 20
    /// An at-most-once request that libcurl wanted to resend, and the pre-request callback refused.
    private var refusedResend = false
    /// The submission's gate refused the request in the pre-request callback: nothing was sent.
    private var fencedBeforeSend = false
    private(set) var responseHeaders: [HTTPHeader] = []
    private(set) var responseBody: [UInt8] = []
    private var uploadErrno: Int32 = 0
    /// The options beyond the per-request ones that the handle holds; nil after a reset or a failure.
    private var configured: Shape?
    /// Whether libcurl hands every response header line to ``appendHeaderLine(_:)``. A request that names the
    /// headers it reads gets them from `curl_easy_header` after the answer instead, with no call per line.
    private var headerCallbackOn = false
    /// The handle's `CURLOPT_PROXY` ("" for none); nil after a reset, when it must be set again.
    private var proxySet: String?

    /// What a request sets besides URL, timeouts, headers and body size: requests of the same shape
    /// can follow each other on a handle without a reset.
    enum Shape: Equatable {
        case upload(method: String)
        case body(method: String)
        case head
        case plain(method: String)
    }

    init(easy: EasyHandle) {
        self.easy = easy
    }

    deinit {
        postBody.deallocate()
    }

    var continuation: CurlCompletion { submission!.continuation }
    /// The pace that admitted the request (nil: none, or no request).
    var pace: (any SendPace)? { submission?.pace }

    private var label: String { "\(request.method) \(redactedURL(request.url))" }

    /// The transfer an easy handle belongs to (`CURLOPT_PRIVATE`, set with the shared options). The loop keeps
    /// the transfer alive while its handle is in the multi handle.
    static func owner(of handle: UnsafeMutableRawPointer) -> CurlTransfer? {
        EasyHandle.privatePointer(of: handle).map { Unmanaged<CurlTransfer>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Takes on `submission` and sets its options on the handle.
    func start(_ submission: CurlSubmission) throws(TransportError) {
        self.submission = submission
        id = submission.id
        request = submission.request
        upload = submission.upload
        sendAttempts = 0
        refusedResend = false
        fencedBeforeSend = false
        uploadErrno = 0
        responseHeaders.removeAll(keepingCapacity: true)
        responseBody = []
        easy.clearError()
        try configure()
    }

    /// Lets go of the request (its continuation, body and file) once the transfer left the multi handle.
    func finish() {
        submission = nil
        upload = nil
        request = HTTPRequest(url: "")
    }

    private var shape: Shape {
        let method = request.method
        if upload != nil { return .upload(method: method) }
        if !request.body.isEmpty || method == "POST" || method == "PUT" { return .body(method: method) }
        return method == "HEAD" ? .head : .plain(method: method)
    }

    /// Sets the options for the current request: all of them on a reset handle, only the per-request
    /// ones on a handle that ran a request of the same shape.
    private func configure() throws(TransportError) {
        let method = request.method
        guard isToken(method) else { throw .other(code: Int(CURLE_BAD_FUNCTION_ARGUMENT.rawValue), message: "\(label): invalid method") }
        let shape = shape
        if configured != shape {
            configured = nil
            proxySet = nil
            easy.reset()
            try configureShared()
            try configure(shape)
            configured = shape
        }
        let wantsCallback = request.responseHeaderNames == nil
        if wantsCallback != headerCallbackOn {
            let context = Unmanaged.passUnretained(self).toOpaque()
            if wantsCallback {
                try easy.set(CURLOPT_HEADERFUNCTION, write: curlWriteHeader)
                try easy.set(CURLOPT_HEADERDATA, pointer: context)
            } else {
                // Both unset: with only the function unset, libcurl would pass headers to the body callback.
                try easy.set(CURLOPT_HEADERFUNCTION, pointer: nil)
                try easy.set(CURLOPT_HEADERDATA, pointer: nil)
            }
            headerCallbackOn = wantsCallback
        }
        try easy.set(CURLOPT_URL, string: request.url)
        // "" is no proxy at all: libcurl then reads no proxy environment variable either.
        let proxy = request.proxy ?? ""
        if proxySet != proxy {
            try easy.set(CURLOPT_PROXY, string: proxy)
            proxySet = proxy
        }
        try easy.set(CURLOPT_TIMEOUT_MS, milliseconds(request.timeout))
        try easy.set(CURLOPT_CONNECTTIMEOUT_MS, milliseconds(request.connectTimeout))

        // One pass over the caller's headers: each must be safe on the wire, and two of them change what libcurl
        // would add by itself.
        var hasExpect = false
        var hasContentType = false
        for header in request.headers {
            guard isToken(header.name), !containsLineBreakOrNUL(header.value) else {
                throw .other(code: Int(CURLE_BAD_FUNCTION_ARGUMENT.rawValue), message: "\(label): invalid header \(header.name)")
            }
            switch header.name.utf8.first.map({ $0 | 0x20 }) {  // the first letter, lowercased, before the whole name
            case UInt8(ascii: "e"): hasExpect = hasExpect || asciiCaseInsensitiveEqual(header.name, "Expect")
            case UInt8(ascii: "c"): hasContentType = hasContentType || asciiCaseInsensitiveEqual(header.name, "Content-Type")
            default: break
            }
        }
        var removing = HeaderList.Removed()
        switch shape {
        case .upload:
            try easy.set(CURLOPT_INFILESIZE_LARGE, offset: upload?.size ?? -1)
        case .body:
            let count = request.body.count
            if postBody.count < max(1, count) {
                postBody.deallocate()
                postBody = .allocate(byteCount: max(count, 2 * postBody.count, 256), alignment: 1)
            }
            request.body.withUnsafeBytes { postBody.copyMemory(from: $0) }
            try easy.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(count))
            try easy.set(CURLOPT_POSTFIELDS, pointer: postBody.baseAddress)
            // "Expect:" turns off libcurl's 100-continue round trip, which a message never needs. From 1 MiB it
            // is left on: a server refusing the request then answers before the body, instead of closing under
            // a body still being written, which the client would see as a broken pipe rather than the answer.
            removing.expect = count < Self.expectContinueFrom && !hasExpect
            removing.contentType = !hasContentType  // "Content-Type:" removes libcurl's default
        case .head, .plain:
            break
        }
        try easy.set(CURLOPT_HTTPHEADER, pointer: headerList.build(request.headers, removing: removing))
    }

    /// The options every request sets the same way.
    private func configureShared() throws(TransportError) {
        let context = Unmanaged.passUnretained(self).toOpaque()
        try easy.set(CURLOPT_ERRORBUFFER, pointer: easy.errorBuffer)
        try easy.set(CURLOPT_PRIVATE, pointer: context)
        try easy.set(CURLOPT_PROTOCOLS_STR, string: "http,https")
        try easy.set(CURLOPT_NOSIGNAL, 1)
        try easy.set(CURLOPT_WRITEFUNCTION, write: curlWriteBody)
        try easy.set(CURLOPT_WRITEDATA, pointer: context)
        try easy.set(CURLOPT_HEADERFUNCTION, write: curlWriteHeader)
        try easy.set(CURLOPT_HEADERDATA, pointer: context)
        headerCallbackOn = true
        // libcurl silently resends a request whose reused keep-alive connection closed before any answer
        // (Curl_retry_request). For an at-most-once request this callback refuses the second send; the
        // transfer then fails and is reported as a lost connection (the gateway may have the first one).
        try easy.set(CURLOPT_PREREQFUNCTION, prereq: curlBeforeSend)
        try easy.set(CURLOPT_PREREQDATA, pointer: context)
    }

    /// The options of one shape, on a reset handle.
    private func configure(_ shape: Shape) throws(TransportError) {
        let context = Unmanaged.passUnretained(self).toOpaque()
        switch shape {
        case .upload(let method):
            try easy.set(CURLOPT_UPLOAD, 1)
            try easy.set(CURLOPT_READFUNCTION, read: curlReadUpload)
            try easy.set(CURLOPT_READDATA, pointer: context)
            if method != "PUT" && method != "GET" { try easy.set(CURLOPT_CUSTOMREQUEST, string: method) }
        case .body(let method):
            try easy.set(CURLOPT_POST, 1)
            if method != "POST" { try easy.set(CURLOPT_CUSTOMREQUEST, string: method) }
        case .head:
            try easy.set(CURLOPT_NOBODY, 1)
        case .plain(let method):
            if method != "GET" { try easy.set(CURLOPT_CUSTOMREQUEST, string: method) }
        }
    }

    /// The response, or the classified error. Must run before `curl_multi_remove_handle`. A failed
    /// transfer leaves the handle to be reset before its next request.
    func outcome(_ code: CURLcode) -> Result<HTTPResponse, TransportError> {
        if code == CURLE_OK {
            if let names = request.responseHeaderNames { readHeaders(names) }
            return .success(HTTPResponse(status: easy.info(CURLINFO_RESPONSE_CODE), headers: responseHeaders, body: responseBody))
        }
        configured = nil
        if fencedBeforeSend { return .failure(fencedError(request)) }
        if refusedResend {
            let message = "\(label): the connection closed before any answer; not resent (at most once)"
            return .failure(.connectionLost(message))
        }
        if uploadErrno != 0, let upload {
            // The read callback aborted: report a read error, not a cancellation.
            let message = "\(label): reading \(upload.path): \(posixErrorText(uploadErrno))"
            return .failure(.other(code: Int(CURLE_READ_ERROR.rawValue), message: message))
        }
        let detail = easy.lastErrorDetail ?? curlMessage(code)
        let message = "\(label): \(scrub(scrub(detail, url: request.url), url: request.proxy ?? ""))"
        return .failure(TransportError(code, message: message, requestSent: easy.info(CURLINFO_REQUEST_SIZE) > 0))
    }

    /// The final response's headers called `names`, in the order asked, each as often as it came.
    private func readHeaders(_ names: [String]) {
        responseHeaders.removeAll(keepingCapacity: true)
        for name in names {
            for value in easy.headerValues(name) { responseHeaders.append(HTTPHeader(name, value)) }
        }
    }

    /// Makes the next request reset the handle (after a cancellation or a failure to start).
    func invalidate() {
        configured = nil
    }

    fileprivate func appendBody(_ bytes: UnsafeRawBufferPointer) {
        responseBody.append(contentsOf: bytes)
    }

    /// Parses one header line of a request that reads every header; a status line starts a new header block
    /// (after `100 Continue`).
    fileprivate func appendHeaderLine(_ bytes: UnsafeRawBufferPointer) {
        var end = bytes.count
        while end > 0, bytes[end - 1] == 0x0A || bytes[end - 1] == 0x0D { end -= 1 }
        let line = UnsafeRawBufferPointer(rebasing: bytes[..<end])
        if line.starts(with: "HTTP/".utf8) {
            responseHeaders.removeAll(keepingCapacity: true)
            return
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return }
        let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
        var valueStart = colon + 1
        while valueStart < end, line[valueStart] == UInt8(ascii: " ") || line[valueStart] == UInt8(ascii: "\t") { valueStart += 1 }
        let value = UnsafeRawBufferPointer(rebasing: line[valueStart...])
        responseHeaders.append(HTTPHeader(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
    }

    /// Called by libcurl each time it is about to send the request; refuses a resend of an at-most-once one.
    fileprivate func beforeSend() -> Int32 {
        sendAttempts += 1
        if let gate = submission?.gate, !gate() {
            // The last moment before the request leaves (the connection is made): the submitter's gate refuses.
            // On a resend the first one may have arrived: that is a lost connection, not a request never sent.
            if sendAttempts == 1 { fencedBeforeSend = true } else { refusedResend = true }
            return CURL_PREREQFUNC_ABORT
        }
        guard sendAttempts > 1, request.atMostOnce else { return CURL_PREREQFUNC_OK }
        refusedResend = true
        return CURL_PREREQFUNC_ABORT
    }

    fileprivate func readUpload(into buffer: UnsafeMutablePointer<CChar>, count: Int) -> Int {
        guard let upload else { return 0 }
        while true {
            let n = read(upload.fd, buffer, count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            uploadErrno = errno
            return Int(CURL_READFUNC_ABORT)
        }
    }
}

@available(*, unavailable)
extension CurlTransfer: Sendable {}

/// `CURLOPT_WRITEFUNCTION`: appends body bytes to the transfer.
private func curlWriteBody(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context else { return 0 }
    let total = size * count
    Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue().appendBody(UnsafeRawBufferPointer(start: data, count: total))
    return total
}

/// `CURLOPT_HEADERFUNCTION`: called once per complete header line.
private func curlWriteHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context else { return 0 }
    let total = size * count
    Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue().appendHeaderLine(UnsafeRawBufferPointer(start: data, count: total))
    return total
}

/// `CURLOPT_READFUNCTION`: reads the next piece of the upload file.
private func curlReadUpload(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context, let buffer else { return Int(CURL_READFUNC_ABORT) }
    return Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue().readUpload(into: buffer, count: size * count)
}

/// `CURLOPT_PREREQFUNCTION`: libcurl is about to send the request (again, when it retries by itself).
private func curlBeforeSend(_ context: UnsafeMutableRawPointer?, _ remoteIP: UnsafeMutablePointer<CChar>?, _ localIP: UnsafeMutablePointer<CChar>?, _ remotePort: Int32, _ localPort: Int32) -> Int32 {
    guard let context else { return CURL_PREREQFUNC_ABORT }
    return Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue().beforeSend()
}

/// The error of a request its submitter's gate refused (``CurlSubmission/gate``).
func fencedError(_ request: HTTPRequest) -> TransportError {
    .fenced("\(request.method) \(redactedURL(request.url)): refused by the sender's gate before it left")
}

/// Seconds to libcurl milliseconds; zero or less means "no limit" (libcurl's 0).
private func milliseconds(_ seconds: Double) -> Int {
    guard seconds > 0 else { return 0 }
    return seconds >= Double(Int32.max) / 1000 ? Int(Int32.max) : max(1, Int((seconds * 1000).rounded()))
}

/// An RFC 9110 token (method or header name).
private func isToken(_ s: String) -> Bool {
    // Every request checks every header name: over the string's bytes in place when they are contiguous
    // (native strings are), not through the UTF-8 view's index.
    func check(_ bytes: some Sequence<UInt8>) -> Bool {
        var empty = true
        for c in bytes {
            empty = false
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"),
                 UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "^"),
                 UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
                continue
            default:
                return false
            }
        }
        return !empty
    }
    return s.utf8.withContiguousStorageIfAvailable { check($0) } ?? check(s.utf8)
}

/// Whether a header value holds CR, LF or NUL (which would split or end the header line).
private func containsLineBreakOrNUL(_ s: String) -> Bool {
    func check(_ bytes: some Sequence<UInt8>) -> Bool { bytes.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 } }
    return s.utf8.withContiguousStorageIfAvailable { check($0) } ?? check(s.utf8)
}
