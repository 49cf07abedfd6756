import Foundation

/// The delivery log: an append-only JSON-lines file, one line per message event (see README "Delivery log").
///
/// Lines are written whole with `O_APPEND`, one `write` per batch, so a reader never sees half a line
/// except after a crash mid-write, which ``open`` repairs by cutting the torn tail. ``requestReopen()``
/// (SIGHUP) makes the next append reopen the path, for logrotate. Used only by the store's writer thread.
public final class DeliveryLogFile: @unchecked Sendable {
    // @unchecked: `fd` and `path` are touched only on the store's writer thread; `reopenRequested` is atomic.
    public let path: String
    private var fd: Int32 = -1
    private let reopenRequested = ReopenFlag()

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

    /// Cuts a torn last line left by a crash and returns the `seq` of the last complete line (0 if none).
    func repairAndLastSeq() throws -> Int64 {
        let rfd = Foundation.open(path, O_RDWR | O_CLOEXEC)
        guard rfd >= 0 else { return 0 }
        defer { close(rfd) }
        let size = lseek(rfd, 0, SEEK_END)
        guard size > 0 else { return 0 }
        let window = min(Int64(size), 256 * 1024)
        var buf = [UInt8](repeating: 0, count: Int(window))
        let got = pread(rfd, &buf, Int(window), off_t(Int64(size) - window))
        guard got == Int(window) else { return 0 }
        guard let lastNL = buf.lastIndex(of: 10) else { return 0 }
        if lastNL != buf.count - 1 {
            // A torn line: drop it; the outbox still holds its event and will write it again.
            _ = ftruncate(rfd, off_t(Int64(size) - window + Int64(lastNL) + 1))
        }
        let start = buf[..<lastNL].lastIndex(of: 10).map { $0 + 1 } ?? 0
        let line = buf[start..<lastNL]
        return DeliveryLogFile.seq(in: Array(line)) ?? 0
    }

    /// Reads `"seq":N` from a line without a full JSON parse.
    static func seq(in line: [UInt8]) -> Int64? {
        let key = Array("\"seq\":".utf8)
        guard line.count > key.count else { return nil }
        for i in 0...(line.count - key.count) where line[i] == key[0] && Array(line[i..<(i + key.count)]) == key {
            var j = i + key.count
            var v: Int64 = 0
            var any = false
            while j < line.count, line[j] >= 48, line[j] <= 57 {
                v = v * 10 + Int64(line[j] - 48)
                j += 1
                any = true
            }
            return any ? v : nil
        }
        return nil
    }

    /// Appends whole lines (each without its newline) in one write.
    func append(_ lines: [String]) throws {
        guard !lines.isEmpty else { return }
        if reopenRequested.takeIfSet() { try openFile() }
        var buffer = [UInt8]()
        buffer.reserveCapacity(lines.count * 200)
        for l in lines {
            buffer.append(contentsOf: l.utf8)
            buffer.append(10)
        }
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.io("writing delivery log \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }
}

/// A flag set from a signal handler and taken by the writer.
final class ReopenFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    func takeIfSet() -> Bool { value.exchange(false, ordering: .acquiringAndReleasing) }
}

import Synchronization
