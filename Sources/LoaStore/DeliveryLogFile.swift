import Foundation

/// The delivery log: an append-only JSON-lines file, one line per message event (see README "Delivery log").
///
/// Lines are written whole with `O_APPEND`, one `write` per batch, so a reader never sees half a line
/// except after a crash mid-write, which ``open`` repairs by cutting the torn tail. ``requestReopen()``
/// (SIGHUP) makes the writer reopen the path, for logrotate: at once through ``Store/reopenDeliveryLog()``, else
/// before its next append. Used only by the store's writer thread.
///
/// Every reopen is confirmed (``onReopen``, ``reopens``): a rotation whose signal never arrived leaves lines going
/// into the rotated file, which nothing else would show.
public final class DeliveryLogFile: @unchecked Sendable {
    // @unchecked: `fd` and `path` are touched only on the store's writer thread; `reopenRequested` and the counts
    // are atomic; `onReopen` is set before the store starts.
    public let path: String
    private var fd: Int32 = -1
    private let reopenRequested = ReopenFlag()
    private let reopenCount = Atomic<Int64>(0)
    private let reopenFailureCount = Atomic<Int64>(0)
    private let lastReopen = Atomic<Int64>(0)

    /// A reopen's result: the file now written (its device and inode) or why the old one is still written.
    public enum Reopen: Sendable {
        case reopened(device: UInt64, inode: UInt64)
        case failed(String)
    }

    /// Called on the writer thread after each reopen asked for by ``requestReopen()``; set it before the store opens.
    public var onReopen: (@Sendable (Reopen) -> Void)?

    /// Reopens done since start (`loa_delivery_log_reopens_total`).
    public var reopens: Int64 { reopenCount.load(ordering: .relaxed) }
    /// Reopens that failed (the old file is still written).
    public var reopenFailures: Int64 { reopenFailureCount.load(ordering: .relaxed) }
    /// Unix milliseconds of the last reopen done, 0 if none.
    public var lastReopenAt: Int64 { lastReopen.load(ordering: .relaxed) }

    public init(path: String) throws {
        self.path = path
        try openFile()
    }

    deinit { if fd >= 0 { close(fd) } }

    private func openFile() throws {
        let newFD = Foundation.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard newFD >= 0 else { throw StoreError.io("cannot open delivery log \(path): \(String(cString: strerror(errno)))") }
        if fd >= 0 { close(fd) }
        fd = newFD
    }

    /// Asks the writer to reopen the file before its next append (async-signal-safe: sets a flag).
    public func requestReopen() { reopenRequested.set() }

    /// Reopens the path if asked to (writer thread only), and reports it through ``onReopen``. A failed open keeps
    /// the old file: the lines go on being written, to the rotated file, and the failure is reported.
    func reopenIfRequested() {
        guard reopenRequested.takeIfSet() else { return }
        do {
            try openFile()
            var st = stat()
            _ = fstat(fd, &st)
            reopenCount.add(1, ordering: .relaxed)
            lastReopen.store(Int64(Date().timeIntervalSince1970 * 1000), ordering: .relaxed)
            onReopen?(.reopened(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)))
        } catch {
            reopenFailureCount.add(1, ordering: .relaxed)
            onReopen?(.failed("\(error)"))
        }
    }

    /// Cuts a torn last line left by a crash and returns the `seq` of the last complete line (0 if none) and
    /// how many bytes of a torn line were cut (0 when the file ended with a newline).
    func repairAndLastSeq() throws -> (lastSeq: Int64, tornBytes: Int) {
        let rfd = Foundation.open(path, O_RDWR | O_CLOEXEC)
        guard rfd >= 0 else { return (0, 0) }
        defer { close(rfd) }
        let size = lseek(rfd, 0, SEEK_END)
        guard size > 0 else { return (0, 0) }
        let window = min(Int64(size), 256 * 1024)
        var buf = [UInt8](repeating: 0, count: Int(window))
        let got = pread(rfd, &buf, Int(window), off_t(Int64(size) - window))
        guard got == Int(window) else { return (0, 0) }
        guard let lastNL = buf.lastIndex(of: 10) else { return (0, 0) }
        var torn = 0
        if lastNL != buf.count - 1 {
            // A torn line: a crash cut the append of a transaction that therefore never committed.
            _ = ftruncate(rfd, off_t(Int64(size) - window + Int64(lastNL) + 1))
            torn = buf.count - 1 - lastNL
        }
        let start = buf[..<lastNL].lastIndex(of: 10).map { $0 + 1 } ?? 0
        let line = buf[start..<lastNL]
        return (DeliveryLogFile.seq(in: Array(line)) ?? 0, torn)
    }

    /// The value of `"time":"…"` in a line, without a full JSON parse (empty if there is none).
    static func time(in line: [UInt8]) -> ArraySlice<UInt8> {
        guard let from = after(Array("\"time\":\"".utf8), in: line) else { return [] }
        return line[from..<(line[from...].firstIndex(of: UInt8(ascii: "\"")) ?? line.count)]
    }

    /// Reads `"seq":N` from a line without a full JSON parse.
    static func seq(in line: some Collection<UInt8>) -> Int64? {
        let bytes = Array(line)
        guard let from = after(Array("\"seq\":".utf8), in: bytes) else { return nil }
        let digits = bytes[from...].prefix { $0 >= 48 && $0 <= 57 }
        // More than 18 digits is no seq Loa wrote (a damaged line): nil, never an overflow at start-up.
        return digits.isEmpty || digits.count > 18 ? nil : digits.reduce(0) { $0 * 10 + Int64($1 - 48) }
    }

    /// The index just past the first occurrence of `key` in `line`.
    private static func after(_ key: [UInt8], in line: [UInt8]) -> Int? {
        guard line.count >= key.count else { return nil }
        for i in 0...(line.count - key.count) where line[i] == key[0] && line[i..<(i + key.count)].elementsEqual(key) {
            return i + key.count
        }
        return nil
    }

    /// Appends whole lines (each without its newline) in one write; see ``append(bytes:)``.
    @discardableResult
    func append(_ lines: [String]) throws -> Int64 {
        var buffer = [UInt8]()
        buffer.reserveCapacity(lines.count * 200)
        for l in lines {
            buffer.append(contentsOf: l.utf8)
            buffer.append(10)
        }
        return try append(bytes: buffer)
    }

    /// Appends newline-terminated lines in one write; returns the file's size before, for
    /// ``truncate(toOffset:)`` should the transaction they belong to fail. A failed write is cut back at once.
    @discardableResult
    func append(bytes buffer: [UInt8]) throws -> Int64 {
        try buffer.withUnsafeBytes { try append($0) }
    }

    /// ``append(bytes:)`` from the writer's own buffer (``LogLineBuffer``), without a copy.
    @discardableResult
    func append(_ buffer: UnsafeRawBufferPointer) throws -> Int64 {
        reopenIfRequested()
        let before = Int64(lseek(fd, 0, SEEK_END))
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                let message = String(cString: strerror(errno))
                if before >= 0 { _ = ftruncate(fd, off_t(before)) }
                throw StoreError.io("writing delivery log \(path): \(message)")
            }
            offset += n
        }
        return before
    }

    /// Cuts the file back to `offset` bytes (the lines of a transaction that did not commit).
    func truncate(toOffset offset: Int64) throws {
        guard offset >= 0, ftruncate(fd, off_t(offset)) == 0 else {
            throw StoreError.io("cutting delivery log \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Cuts every line whose seq is above `seq` from the end of the file, provided they are one transaction's
    /// (they share one `time`: a crash between the append and the commit), and returns the seq of the last line
    /// kept (0 if none). Lines of several transactions above `seq` mean something else (a store restored from
    /// a backup): nothing is cut and nil is returned.
    func truncate(afterSeq seq: Int64) throws -> Int64? {
        let rfd = Foundation.open(path, O_RDWR | O_CLOEXEC)
        guard rfd >= 0 else { return 0 }
        defer { close(rfd) }
        var end = Int64(lseek(rfd, 0, SEEK_END))  // the file ends with a newline (repaired)
        let window: Int64 = 256 * 1024
        var carry: [UInt8] = []  // the start of a line whose beginning lies in an earlier window
        var time: ArraySlice<UInt8>?
        func oneTransaction(_ line: [UInt8]) -> Bool {
            let t = DeliveryLogFile.time(in: line)
            if time == nil { time = t }
            return t == time
        }
        while end > 0 {
            let start = max(0, end - window)
            var buf = [UInt8](repeating: 0, count: Int(end - start))
            guard pread(rfd, &buf, buf.count, off_t(start)) == buf.count else { break }
            buf += carry
            // Walk the lines of this window from the last one back. The first one is whole only in the file's first
            // window; elsewhere it waits for the next window.
            var lineEnd = buf.count - 1  // index of a newline
            while true {
                let nl = buf[..<lineEnd].lastIndex(of: 10)
                guard nl != nil || start == 0 else { break }
                let line = Array(buf[(nl.map { $0 + 1 } ?? 0)..<lineEnd])
                if let s = DeliveryLogFile.seq(in: line), s <= seq {
                    _ = ftruncate(rfd, off_t(start + Int64(lineEnd) + 1))
                    return s
                }
                guard oneTransaction(line) else { return nil }
                guard let nl else { break }
                lineEnd = nl
            }
            if start == 0 { break }
            carry = Array(buf[...lineEnd])
            end = start
        }
        _ = ftruncate(rfd, 0)
        return 0
    }
}

/// A flag set from a signal handler and taken by the writer.
final class ReopenFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    func takeIfSet() -> Bool { value.exchange(false, ordering: .acquiringAndReleasing) }
}

import Synchronization
