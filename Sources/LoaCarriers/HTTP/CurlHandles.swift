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
            // SEND_FAIL_REWIND: an at-most-once request whose connection closed unanswered (libcurl wanted to resend it).
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

/// Owns one `CURL *` easy handle. Reused across transfers with `curl_easy_reset`, so its
/// connection stays in the multi handle's pool. Lives on the engine thread only.
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

    /// String options are copied by libcurl (since 7.17.0).
    func set(_ option: CURLoption, string value: String) throws(TransportError) {
        try check(ccurl_easy_setopt_pointer(raw, option, value), "curl_easy_setopt(\(option.rawValue))")
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

    /// https://curl.se/libcurl/c/curl_easy_getinfo.html
    func info(_ info: CURLINFO) -> Int {
        var value = 0
        return ccurl_easy_getinfo_long(raw, info, &value) == CURLE_OK ? value : 0
    }

    /// The detailed message libcurl wrote for the last failure, or nil.
    var lastErrorDetail: String? {
        errorBuffer[0] == 0 ? nil : String(cString: errorBuffer)
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
