import CCurl

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Entry point of the engine thread: takes ownership of the loop and runs it to shutdown.
func curlEngineThreadMain(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let context else { return nil }
    let loop = Unmanaged<CurlLoop>.fromOpaque(context).takeRetainedValue()
    loop.run()
    return nil
}

/// The engine thread's state. Never leaves that thread (created before it starts, handed over
/// through an `Unmanaged` pointer).
final class CurlLoop {
    private let shared: EngineShared
    private let multi: MultiHandle
    private let maxIdleHandles: Int
    /// Transfers in the multi handle, by easy handle and by request id.
    private var byHandle: [UnsafeMutableRawPointer: CurlTransfer] = [:]
    private var byID: [UInt64: UnsafeMutableRawPointer] = [:]
    /// Reset easy handles ready for the next request.
    private var idle: [EasyHandle] = []
    /// Completions of this iteration, resumed after the bookkeeping lock is released.
    private var finished: [(CurlCompletion, Result<HTTPResponse, TransportError>)] = []

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
                stop(failing: incoming)
                return
            }
            for submission in incoming { start(submission) }
            incoming.removeAll(keepingCapacity: true)
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
                    try check(curl_multi_poll(multi.raw, nil, 0, 1000, nil), "curl_multi_poll")
                } catch {
                    failAll(error)
                }
            }
        }
    }

    // MARK: Transfers

    private func start(_ submission: CurlSubmission) {
        let easy: EasyHandle
        if let reused = idle.popLast() {
            easy = reused
        } else {
            do {
                easy = try EasyHandle()
            } catch {
                finished.append((submission.continuation, .failure(error)))
                return
            }
        }
        let transfer = CurlTransfer(submission: submission, easy: easy)
        do {
            try transfer.configure()
            try check(curl_multi_add_handle(multi.raw, easy.raw), "curl_multi_add_handle")
        } catch {
            finished.append((submission.continuation, .failure(error)))
            recycle(transfer)
            return
        }
        byHandle[easy.raw] = transfer
        byID[submission.id] = easy.raw
    }

    /// Drains `curl_multi_info_read`. A message's fields are read before
    /// `curl_multi_remove_handle`, which invalidates it.
    private func collectCompletions() {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi.raw, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle else { continue }
            let code = message.pointee.data.result
            guard let transfer = byHandle.removeValue(forKey: handle) else { continue }
            byID[transfer.id] = nil
            let result = transfer.outcome(code)
            _ = curl_multi_remove_handle(multi.raw, handle)
            finished.append((transfer.continuation, result))
            recycle(transfer)
        }
    }

    private func cancel(_ id: UInt64) {
        guard let handle = byID.removeValue(forKey: id), let transfer = byHandle.removeValue(forKey: handle) else {
            return
        }
        _ = curl_multi_remove_handle(multi.raw, handle)
        finished.append((transfer.continuation, .failure(cancelledError(transfer.request))))
        recycle(transfer)
    }

    private func failAll(_ error: TransportError) {
        for (handle, transfer) in byHandle {
            _ = curl_multi_remove_handle(multi.raw, handle)
            finished.append((transfer.continuation, .failure(error)))
            recycle(transfer)
        }
        byHandle.removeAll()
        byID.removeAll()
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
        for (continuation, result) in finished { continuation.resume(returning: result) }
        finished.removeAll(keepingCapacity: true)
    }

    /// Resets the easy handle (after it left the multi handle) and keeps it for reuse; the
    /// transfer's header list, body copy and file are released with it.
    private func recycle(_ transfer: CurlTransfer) {
        let easy = transfer.easy
        easy.reset()
        if idle.count < maxIdleHandles { idle.append(easy) }
    }
}

/// One request on the wire: owns what libcurl points into until the easy handle is reset.
final class CurlTransfer {
    let id: UInt64
    let request: HTTPRequest
    let easy: EasyHandle
    let continuation: CurlCompletion
    private let upload: UploadFile?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var postBody: UnsafeMutableRawBufferPointer?
    /// How much of `postBody` the read callback has handed out (at-most-once requests).
    private var postOffset = 0
    private(set) var responseHeaders: [HTTPHeader] = []
    private(set) var responseBody: [UInt8] = []
    private var uploadErrno: Int32 = 0

    init(submission: CurlSubmission, easy: EasyHandle) {
        id = submission.id
        request = submission.request
        upload = submission.upload
        continuation = submission.continuation
        self.easy = easy
    }

    deinit {
        curl_slist_free_all(headerList)
        postBody?.deallocate()
    }

    private var label: String { "\(request.method) \(redactedURL(request.url))" }

    /// Sets every option for this request on a freshly reset easy handle.
    func configure() throws(TransportError) {
        let method = request.method
        guard isToken(method) else { throw .other(code: Int(CURLE_BAD_FUNCTION_ARGUMENT.rawValue), message: "\(label): invalid method") }
        let context = Unmanaged.passUnretained(self).toOpaque()
        try easy.set(CURLOPT_ERRORBUFFER, pointer: easy.errorBuffer)
        try easy.set(CURLOPT_URL, string: request.url)
        try easy.set(CURLOPT_PROTOCOLS_STR, string: "http,https")
        try easy.set(CURLOPT_NOSIGNAL, 1)
        try easy.set(CURLOPT_TIMEOUT_MS, milliseconds(request.timeout))
        try easy.set(CURLOPT_CONNECTTIMEOUT_MS, milliseconds(request.connectTimeout))
        try easy.set(CURLOPT_WRITEFUNCTION, write: curlWriteBody)
        try easy.set(CURLOPT_WRITEDATA, pointer: context)
        try easy.set(CURLOPT_HEADERFUNCTION, write: curlWriteHeader)
        try easy.set(CURLOPT_HEADERDATA, pointer: context)

        var headers = request.headers
        if let upload {
            try easy.set(CURLOPT_UPLOAD, 1)
            try easy.set(CURLOPT_READFUNCTION, read: curlReadUpload)
            try easy.set(CURLOPT_READDATA, pointer: context)
            try easy.set(CURLOPT_INFILESIZE_LARGE, offset: upload.size ?? -1)
            if method != "PUT" && method != "GET" { try easy.set(CURLOPT_CUSTOMREQUEST, string: method) }
        } else if !request.body.isEmpty || method == "POST" || method == "PUT" {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, request.body.count), alignment: 1)
            buffer.copyBytes(from: request.body)
            postBody = buffer
            try easy.set(CURLOPT_POST, 1)
            try easy.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(request.body.count))
            if request.atMostOnce {
                // libcurl silently resends a request whose reused connection closed before any answer
                // (Curl_retry_request). Given through a read callback that cannot rewind, the body makes that
                // resend fail with CURLE_SEND_FAIL_REWIND instead, which the caller sees as a lost connection.
                try easy.set(CURLOPT_READFUNCTION, read: curlReadPostBody)
                try easy.set(CURLOPT_READDATA, pointer: context)
                headers.append(HTTPHeader("Expect", ""))  // no 100-continue round trip for bodies over 1 KiB
            } else {
                try easy.set(CURLOPT_POSTFIELDS, pointer: buffer.baseAddress)
            }
            if method != "POST" { try easy.set(CURLOPT_CUSTOMREQUEST, string: method) }
            if !headers.contains(where: { asciiCaseInsensitiveEqual($0.name, "Content-Type") }) {
                headers.append(HTTPHeader("Content-Type", ""))  // "Content-Type:" removes libcurl's default
            }
        } else if request.atMostOnce {
            // No body to refuse a rewind with: a fresh connection is never silently retried.
            try easy.set(CURLOPT_FRESH_CONNECT, 1)
            try easy.set(CURLOPT_FORBID_REUSE, 1)
            if method != "GET" { try easy.set(CURLOPT_CUSTOMREQUEST, string: method) }
        } else if method == "HEAD" {
            try easy.set(CURLOPT_NOBODY, 1)
        } else if method != "GET" {
            try easy.set(CURLOPT_CUSTOMREQUEST, string: method)
        }

        for header in headers {
            guard isToken(header.name), !header.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                throw .other(code: Int(CURLE_BAD_FUNCTION_ARGUMENT.rawValue), message: "\(label): invalid header \(header.name)")
            }
            // libcurl: "Name:" removes a header it would add, "Name;" sends it empty.
            let removes = header.name == "Content-Type" || header.name == "Expect"
            let line = header.value.isEmpty && !removes ? "\(header.name);" : "\(header.name): \(header.value)"
            guard let list = curl_slist_append(headerList, line) else {
                throw .other(code: Int(CURLE_OUT_OF_MEMORY.rawValue), message: "\(label): curl_slist_append failed")
            }
            headerList = list
        }
        if let headerList { try easy.set(CURLOPT_HTTPHEADER, pointer: headerList) }
    }

    /// The response, or the classified error. Must run before `curl_multi_remove_handle`.
    func outcome(_ code: CURLcode) -> Result<HTTPResponse, TransportError> {
        if code == CURLE_OK {
            return .success(HTTPResponse(status: easy.info(CURLINFO_RESPONSE_CODE), headers: responseHeaders, body: responseBody))
        }
        if uploadErrno != 0, let upload {
            // The read callback aborted: report a read error, not a cancellation.
            let message = "\(label): reading \(upload.path): \(posixErrorText(uploadErrno))"
            return .failure(.other(code: Int(CURLE_READ_ERROR.rawValue), message: message))
        }
        let detail = easy.lastErrorDetail ?? curlMessage(code)
        let message = "\(label): \(scrub(detail, url: request.url))"
        return .failure(TransportError(code, message: message, requestSent: easy.info(CURLINFO_REQUEST_SIZE) > 0))
    }

    fileprivate func appendBody(_ bytes: UnsafeRawBufferPointer) {
        responseBody.append(contentsOf: bytes)
    }

    /// Parses one header line; a status line starts a new header block (after `100 Continue`).
    fileprivate func appendHeaderLine(_ bytes: UnsafeRawBufferPointer) {
        var end = bytes.count
        while end > 0, bytes[end - 1] == 0x0A || bytes[end - 1] == 0x0D { end -= 1 }
        let line = Substring(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<end]), as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            responseHeaders.removeAll(keepingCapacity: true)
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon]
        let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
        responseHeaders.append(HTTPHeader(String(name), String(value)))
    }

    fileprivate func readPostBody(into buffer: UnsafeMutablePointer<CChar>, count: Int) -> Int {
        guard let postBody else { return 0 }
        let n = min(count, request.body.count - postOffset)
        guard n > 0 else { return 0 }
        UnsafeMutableRawPointer(buffer).copyMemory(from: postBody.baseAddress! + postOffset, byteCount: n)
        postOffset += n
        return n
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

/// `CURLOPT_READFUNCTION` for at-most-once request bodies (no seek callback: they cannot be resent).
private func curlReadPostBody(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context, let buffer else { return Int(CURL_READFUNC_ABORT) }
    return Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue().readPostBody(into: buffer, count: size * count)
}

/// Seconds to libcurl milliseconds; zero or less means "no limit" (libcurl's 0).
private func milliseconds(_ seconds: Double) -> Int {
    guard seconds > 0 else { return 0 }
    return seconds >= Double(Int32.max) / 1000 ? Int(Int32.max) : max(1, Int((seconds * 1000).rounded()))
}

/// An RFC 9110 token (method or header name).
private func isToken(_ s: String) -> Bool {
    !s.isEmpty && s.utf8.allSatisfy { c in
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }
}
