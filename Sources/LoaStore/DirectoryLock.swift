import Foundation
import Synchronization

/// `loa.lock` in the data directory, held with `flock` while a store is open there (released by ``release()``
/// or when the process ends, however it ends). It holds the pid of its owner, for the error a second one gets.
final class DirectoryLock: Sendable {
    private let fd: Mutex<Int32>

    init(directory: String) throws {
        let path = directory + "/loa.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.io("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            guard code == EWOULDBLOCK else { throw StoreError.io("cannot lock \(path): \(String(cString: strerror(code)))") }
            let owner = n > 0 ? String(decoding: buffer[..<n], as: UTF8.self).trimmingSpaces() : ""
            throw StoreError.conflict("the data directory \(directory) is in use by another loa process\(owner.isEmpty ? "" : " (pid \(owner))"); one daemon per data_dir")
        }
        let pid = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) != 0 || pwrite(fd, pid, pid.count, 0) != pid.count {
            close(fd)
            throw StoreError.io("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        self.fd = Mutex(fd)
    }

    /// Closing the file lets go of the lock. Idempotent.
    func release() {
        fd.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    deinit { release() }
}
