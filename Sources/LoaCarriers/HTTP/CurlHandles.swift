import CCurl

/// `curl_global_init`, run once per process on first use (Swift initialises globals once,
/// thread-safely). https://curl.se/libcurl/c/curl_global_init.html
private let curlGlobalInitResult: CURLcode = curl_global_init(Int(CURL_GLOBAL_ALL))

func ensureCurlGlobalInit() throws(TransportError) {
    try check(curlGlobalInitResult, "curl_global_init")
}

/// Maps the `CURLcode` of an easy-interface call to ``TransportError``: codes that can only
/// mean a bug here (unknown option, bad argument, feature not built in) trap, every other
/// failure throws. https://curl.se/libcurl/c/libcurl-errors.html
func check(_ code: CURLcode, _ context: @autoclosure () -> String) throws(TransportError) {
    guard code != CURLE_OK else { return }
    switch code {
    case CURLE_UNKNOWN_OPTION, CURLE_BAD_FUNCTION_ARGUMENT, CURLE_NOT_BUILT_IN:
        preconditionFailure("libcurl misuse: \(context()): \(curlMessage(code))")
    default:
        throw TransportError(code, message: "\(context()): \(curlMessage(code))", requestSent: true)
    }
}

extension TransportError {
    /// Classifies a failed transfer by whether the request can have reached the server.
    /// `requestSent` is libcurl's `CURLINFO_REQUEST_SIZE > 0`: a timeout before any byte of the
    /// request was written is a connect failure, always safe to retry.
    init(_ code: CURLcode, message: String, requestSent: Bool) {
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_SSL_CONNECT_ERROR:
            self = .couldNotConnect(message)
        case CURLE_OPERATION_TIMEDOUT:
            self = requestSent ? .timedOut(message) : .couldNotConnect(message)
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_SEND_FAIL_REWIND:
            self = .connectionLost(message)
        default:
            self = .other(code: Int(code.rawValue), message: message)
        }
    }
}

/// Maps a multi-interface `CURLMcode`: misuse (bad handle, handle added twice) traps, other
/// failures (out of memory, internal error) throw `.other`.
/// https://curl.se/libcurl/c/libcurl-errors.html
func check(_ code: CURLMcode, _ context: @autoclosure () -> String) throws(TransportError) {
    guard code != CURLM_OK else { return }
    let message = "\(context()): \(String(cString: curl_multi_strerror(code)))"
    switch code {
    case CURLM_BAD_HANDLE, CURLM_BAD_EASY_HANDLE, CURLM_ADDED_ALREADY, CURLM_UNKNOWN_OPTION, CURLM_BAD_FUNCTION_ARGUMENT:
        preconditionFailure("libcurl misuse: \(message)")
    default:
        throw .other(code: Int(code.rawValue), message: message)
    }
}

func curlMessage(_ code: CURLcode) -> String { String(cString: curl_easy_strerror(code)) }

/// Owns one `CURL *` easy handle. Reused across transfers (connections stay in the multi handle's
/// pool either way). Lives on the engine thread only.
final class EasyHandle {
    let raw: UnsafeMutableRawPointer
    /// `CURLOPT_ERRORBUFFER`: libcurl's detailed message for the last failure.
    let errorBuffer: UnsafeMutablePointer<CChar>

    init() throws(TransportError) {
        try ensureCurlGlobalInit()
        guard let raw = curl_easy_init() else {
            throw .other(code: Int(CURLE_FAILED_INIT.rawValue), message: "curl_easy_init failed")
        }
        self.raw = raw
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }

    /// https://curl.se/libcurl/c/curl_easy_setopt.html
    func set(_ option: CURLoption, _ value: Int) throws(TransportError) {
        try check(ccurl_easy_setopt_long(raw, option, value), "curl_easy_setopt(\(option.rawValue))")
    }

    func set(_ option: CURLoption, offset value: Int64) throws(TransportError) {
        try check(ccurl_easy_setopt_off(raw, option, curl_off_t(value)), "curl_easy_setopt(\(option.rawValue))")
    }

    /// String options are copied by libcurl (since 7.17.0). libcurl refuses a string longer than
    /// `CURL_MAX_INPUT_LENGTH` (8,000,000 bytes) with `CURLE_BAD_FUNCTION_ARGUMENT`: that depends on the data
    /// (a URL built from a message's text), so it throws ``TransportError/other(code:message:)`` for that request
    /// instead of trapping as misuse would. https://curl.se/libcurl/c/curl_easy_setopt.html
    func set(_ option: CURLoption, string value: String) throws(TransportError) {
        let code = ccurl_easy_setopt_pointer(raw, option, value)
        if code == CURLE_BAD_FUNCTION_ARGUMENT {
            throw .other(code: Int(code.rawValue), message: "curl_easy_setopt(\(option.rawValue)): a value of \(value.utf8.count) bytes refused (too long?)")
        }
        try check(code, "curl_easy_setopt(\(option.rawValue))")
    }

    /// Pointer options are not copied: the caller keeps the memory alive for the transfer.
    func set(_ option: CURLoption, pointer value: UnsafeRawPointer?) throws(TransportError) {
        try check(ccurl_easy_setopt_pointer(raw, option, value), "curl_easy_setopt(\(option.rawValue))")
    }

    func set(_ option: CURLoption, write callback: curl_write_callback) throws(TransportError) {
        try check(ccurl_easy_setopt_write_callback(raw, option, callback), "curl_easy_setopt(\(option.rawValue))")
    }

    func set(_ option: CURLoption, read callback: curl_read_callback) throws(TransportError) {
        try check(ccurl_easy_setopt_read_callback(raw, option, callback), "curl_easy_setopt(\(option.rawValue))")
    }

    func set(_ option: CURLoption, prereq callback: curl_prereq_callback) throws(TransportError) {
        try check(ccurl_easy_setopt_prereq_callback(raw, option, callback), "curl_easy_setopt(\(option.rawValue))")
    }

    /// https://curl.se/libcurl/c/curl_easy_getinfo.html
    func info(_ info: CURLINFO) -> Int {
        var value = 0
        return ccurl_easy_getinfo_long(raw, info, &value) == CURLE_OK ? value : 0
    }

    /// The final response's headers called `name` (any case), in the order they came: libcurl's header store,
    /// read after the answer (https://curl.se/libcurl/c/curl_easy_header.html).
    func headerValues(_ name: String) -> [String] {
        var values: [String] = []
        var amount = 1
        while values.count < amount {
            var header: UnsafeMutablePointer<curl_header>?
            // Request -1: the last request's headers, so not those of a `100 Continue`.
            guard curl_easy_header(raw, name, values.count, UInt32(CURLH_HEADER), -1, &header) == CURLHE_OK,
                  let h = header?.pointee, let value = h.value else { break }
            amount = h.amount
            values.append(String(cString: value))
        }
        return values
    }

    /// The `CURLOPT_PRIVATE` pointer of the easy handle `raw` (as `curl_multi_info_read` names it), or nil.
    static func privatePointer(of raw: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
        var pointer: UnsafeMutablePointer<CChar>?
        guard ccurl_easy_getinfo_pointer(raw, CURLINFO_PRIVATE, &pointer) == CURLE_OK, let pointer else { return nil }
        return UnsafeMutableRawPointer(pointer)
    }

    /// The detailed message libcurl wrote for the last failure, or nil.
    var lastErrorDetail: String? {
        errorBuffer[0] == 0 ? nil : String(cString: errorBuffer)
    }

    func clearError() {
        errorBuffer[0] = 0
    }

    /// https://curl.se/libcurl/c/curl_easy_reset.html
    func reset() {
        curl_easy_reset(raw)
        errorBuffer[0] = 0
    }
}

@available(*, unavailable)
extension EasyHandle: Sendable {}

/// Owns the `CURLM *` multi handle.
///
/// `@unchecked Sendable` only so that submitting threads can call ``wakeup()``:
/// `curl_multi_wakeup` is the one multi call documented as safe from any thread. Every other
/// method is called on the engine thread only. Freed when both the engine and its thread have
/// let go of it, so a late wakeup can never touch freed memory.
final class MultiHandle: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer

    init() throws(TransportError) {
        try ensureCurlGlobalInit()
        guard let raw = curl_multi_init() else {
            throw .other(code: Int(CURLE_FAILED_INIT.rawValue), message: "curl_multi_init failed")
        }
        self.raw = raw
    }

    deinit { curl_multi_cleanup(raw) }

    /// https://curl.se/libcurl/c/curl_multi_setopt.html
    func set(_ option: CURLMoption, _ value: Int) throws(TransportError) {
        try check(ccurl_multi_setopt_long(raw, option, value), "curl_multi_setopt(\(option.rawValue))")
    }

    /// Interrupts `curl_multi_poll` on the engine thread. https://curl.se/libcurl/c/curl_multi_wakeup.html
    func wakeup() {
        _ = curl_multi_wakeup(raw)
    }
}

/// A `curl_slist` of request header lines for `CURLOPT_HTTPHEADER`, built in memory owned here and reused
/// from request to request, so a request's headers cost no allocation once the buffers have grown.
/// libcurl only reads the list, never frees it (https://curl.se/libcurl/c/CURLOPT_HTTPHEADER.html).
/// Lives on the engine thread only.
final class HeaderList {
    /// Headers libcurl adds by itself that the list removes (`Name:` with nothing after the colon).
    struct Removed {
        var expect = false
        var contentType = false
    }

    private var bytes = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var nodes = UnsafeMutableBufferPointer<curl_slist>(start: nil, count: 0)

    deinit {
        bytes.deallocate()
        nodes.deallocate()
    }

    /// The list for `headers`, in order, then the removals (nil when empty), valid until the next call. A
    /// header with an empty value is sent as `Name;` (libcurl's way to send it empty), except for
    /// `Content-Type` and `Expect`, where `Name:` removes the header libcurl would add itself.
    func build(_ headers: [HTTPHeader], removing: Removed = Removed()) -> UnsafeMutablePointer<curl_slist>? {
        let count = headers.count + (removing.expect ? 1 : 0) + (removing.contentType ? 1 : 0)
        guard count > 0 else { return nil }
        reserve(bytes: headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 3 } + 24, nodes: count)
        var offset = 0
        var index = 0
        // Ends the line that started at `start` and links it into the list.
        func endLine(from start: Int) {
            offset = write("\0".utf8, at: offset)
            let next = index + 1 < count ? nodes.baseAddress! + index + 1 : nil
            nodes[index] = curl_slist(data: (bytes.baseAddress! + start).assumingMemoryBound(to: CChar.self), next: next)
            index += 1
        }
        for header in headers {
            let start = offset
            offset = write(header.name.utf8, at: offset)
            if header.value.isEmpty {
                let removes = header.name == "Content-Type" || header.name == "Expect"
                offset = write(removes ? ":".utf8 : ";".utf8, at: offset)
            } else {
                offset = write(": ".utf8, at: offset)
                offset = write(header.value.utf8, at: offset)
            }
            endLine(from: start)
        }
        if removing.expect {
            let start = offset
            offset = write("Expect:".utf8, at: offset)
            endLine(from: start)
        }
        if removing.contentType {
            let start = offset
            offset = write("Content-Type:".utf8, at: offset)
            endLine(from: start)
        }
        return nodes.baseAddress
    }

    private func write(_ utf8: String.UTF8View, at offset: Int) -> Int {
        let copied = utf8.withContiguousStorageIfAvailable { source in
            (bytes.baseAddress! + offset).copyMemory(from: source.baseAddress!, byteCount: source.count)
            return offset + source.count
        }
        if let copied { return copied }
        var offset = offset
        for byte in utf8 {
            bytes[offset] = byte
            offset += 1
        }
        return offset
    }

    private func reserve(bytes byteCount: Int, nodes nodeCount: Int) {
        if bytes.count < byteCount {
            bytes.deallocate()
            bytes = .allocate(byteCount: max(byteCount, 2 * bytes.count, 512), alignment: 1)
        }
        if nodes.count < nodeCount {
            nodes.deallocate()
            nodes = .allocate(capacity: max(nodeCount, 2 * nodes.count, 16))
        }
    }
}

@available(*, unavailable)
extension HeaderList: Sendable {}
