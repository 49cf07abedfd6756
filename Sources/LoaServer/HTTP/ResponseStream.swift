import CMicroHTTPD
import Synchronization

/// A response body made while it is sent (server-sent events): the server asks for the next bytes whenever the
/// client can take more, on the connection's thread.
///
/// Contract:
/// - ``next(max:)`` MAY block (the connection has a thread of its own) and MUST return non-empty bytes, or nil to
///   end the response; it MUST NOT block without bound: a stream waiting for data sends something (an SSE comment)
///   within the connection's idle timeout, and returns nil soon after ``close()``.
/// - ``close()`` MAY be called from any thread, more than once: by the server when it stops (so a stream never
///   holds a stop up), and when the response is done with (the client went away, or the stream ended).
/// - Memory is the stream's to bound: the server holds at most one ``next(max:)`` answer at a time, and asks for
///   more only when the client has taken the last one, so a slow client leaves the backlog wherever the stream
///   keeps it (a file), never in the server.
public protocol ResponseStream: AnyObject, Sendable {
    func next(max: Int) -> [UInt8]?
    func close()
}

/// The streams of the responses being sent, so that ``HTTPServer/stop()`` can end them before it waits for
/// requests to drain (a stream has no end of its own).
final class OpenStreams: Sendable {
    private struct State {
        var streams: [ObjectIdentifier: any ResponseStream] = [:]
        var stopping = false
    }
    private let state = Mutex(State())

    /// Adds a stream; false when the server is stopping (the stream is then closed, and not sent).
    func add(_ s: any ResponseStream) -> Bool {
        let added = state.withLock { st -> Bool in
            if st.stopping { return false }
            st.streams[ObjectIdentifier(s)] = s
            return true
        }
        if !added { s.close() }
        return added
    }

    func remove(_ s: any ResponseStream) {
        _ = state.withLock { $0.streams.removeValue(forKey: ObjectIdentifier(s)) }
        s.close()
    }

    /// Refuses new streams and closes the open ones.
    func closeAll() {
        let open = state.withLock { st -> [any ResponseStream] in
            st.stopping = true
            return Array(st.streams.values)
        }
        for s in open { s.close() }
    }
}

/// What the content reader callback reaches through its `cls`: the stream, what is left of its last answer, and
/// the registry to leave when freed. Touched only by the connection's thread (and freed by libmicrohttpd once).
final class StreamContext {
    let stream: any ResponseStream
    let registry: OpenStreams
    var pending: [UInt8] = []
    var sent = 0

    init(stream: any ResponseStream, registry: OpenStreams) {
        self.stream = stream
        self.registry = registry
    }
}

@available(*, unavailable)
extension StreamContext: Sendable {}

/// Bytes asked of a stream at once (libmicrohttpd's block size for the response).
let streamBlockSize = 32 * 1024

/// `MHD_ContentReaderCallback`: copies the stream's next bytes into libmicrohttpd's buffer; -1
/// (`MHD_CONTENT_READER_END_OF_STREAM`) ends the response: the last chunk is sent and the request completes.
/// https://www.gnu.org/software/libmicrohttpd/manual/html_node/microhttpd_002dcb.html
func mhdStreamReader(_ cls: UnsafeMutableRawPointer?, _ position: UInt64, _ buffer: UnsafeMutablePointer<CChar>?, _ max: Int) -> Int {
    guard let cls, let buffer, max > 0 else { return -1 }
    let context = Unmanaged<StreamContext>.fromOpaque(cls).takeUnretainedValue()
    if context.sent >= context.pending.count {
        guard let bytes = context.stream.next(max: max), !bytes.isEmpty else { return -1 }
        context.pending = bytes
        context.sent = 0
    }
    let n = min(max, context.pending.count - context.sent)
    context.pending.withUnsafeBytes { src in
        UnsafeMutableRawPointer(buffer).copyMemory(from: src.baseAddress! + context.sent, byteCount: n)
    }
    context.sent += n
    return n
}

/// `MHD_ContentReaderFreeCallback`: the response is destroyed (sent, or the connection closed): the stream is closed
/// and leaves the registry.
func mhdStreamFree(_ cls: UnsafeMutableRawPointer?) {
    guard let cls else { return }
    let context = Unmanaged<StreamContext>.fromOpaque(cls).takeRetainedValue()
    context.registry.remove(context.stream)
}

/// A libmicrohttpd response of unknown size (chunked) read from `stream`, or nil when the server is stopping or
/// libmicrohttpd refuses (the stream is then closed).
func makeStreamResponse(_ stream: any ResponseStream, registry: OpenStreams) -> OpaquePointer? {
    guard registry.add(stream) else { return nil }
    let context = Unmanaged.passRetained(StreamContext(stream: stream, registry: registry)).toOpaque()
    // MHD_SIZE_UNKNOWN is `((uint64_t) -1)`, a macro Swift does not import.
    guard let response = MHD_create_response_from_callback(UInt64.max, streamBlockSize, mhdStreamReader, context, mhdStreamFree) else {
        mhdStreamFree(context)
        return nil
    }
    return response
}
