import CSQLite
import Foundation
import LoaCore
import Synchronization

/// Copies the write-ahead log back into the database on a thread of its own, so the writer never waits for it.
///
/// SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, on the writer thread: it
/// syncs the log, copies every page back and syncs the database, and the writer (and with it every claim and
/// record, and every API request, since they are all jobs of the writer) waits for the disk meanwhile. In
/// `Tests/Benchmarks/batch.sh` runs the writer spent 12-16% of the sending time blocked in the kernel (thread states
/// sampled from `/proc`: `fsync`, writeback throttling) and `GET /api/v1/campaigns/ID` took up to 0.48-0.55 s; with
/// this thread, none of the first and at most 58 ms, and recipients/s rose by about 10% (median of 9 runs each).
///
/// Here the writer's connection has no automatic checkpoint. Its WAL hook, called after each commit with the
/// log's size in pages, wakes this thread once the log holds ``wakeAt`` pages; the thread runs a PASSIVE
/// checkpoint on a connection of its own (it never blocks the writer, and the writer never blocks it). When a
/// checkpoint has copied everything, the writer's next transaction starts the log again from its beginning; while
/// the writer never pauses that does not happen (the log is never copied whole between two of its commits), so
/// the log grows past ``wakeAt`` (to 200 MiB in those runs, and to 412 MB in a 1M-recipient run with a 400 MiB cap). At ``inlineAt`` pages the writer checkpoints
/// itself, as SQLite would: the log never grows without bound. Durability is SQLite's, as before: WAL mode with
/// `synchronous=NORMAL`.
/// https://www.sqlite.org/wal.html#ckpt, https://www.sqlite.org/c3ref/wal_hook.html
final class Checkpointer: Sendable {
    /// Pages in the log (4 KiB each) at which the thread is woken (the store's: 10,000, 40 MiB).
    let wakeAt: Int32
    /// Pages at which the writer checkpoints itself (the store's: 50,000, 200 MiB).
    let inlineAt: Int32

    private struct State {
        var pending = false
        var stopping = false
        var stopped = false
        /// Checkpoints run, and how many of them failed (other than SQLITE_BUSY).
        var runs = 0
        var errors = 0
    }
    private let state = Mutex(State())
    private let cond = NSCondition()

    /// Opens a second connection to `path` and starts the thread.
    init(path: String, wakeAt: Int32, inlineAt: Int32) throws {
        self.wakeAt = wakeAt
        self.inlineAt = inlineAt
        // Owned by the thread from here on, and closed there before ``stop()`` returns.
        let connection = Handoff(value: Unmanaged.passRetained(try Connection(path: path)).toOpaque())
        let t = Thread { [self] in
            nameThisThread("loa-checkpoint")
            do {
                let db = Unmanaged<Connection>.fromOpaque(connection.value).takeRetainedValue()
                self.loop(db)
            }
            cond.lock()
            state.withLock { $0.stopped = true }
            cond.broadcast()
            cond.unlock()
        }
        t.start()
    }

    /// Installs the WAL hook on the writer's connection. The hook holds this object unretained: the writer's
    /// context keeps it alive, and ``detach(from:)`` removes the hook before the context goes.
    func attach(to db: Connection) {
        sqlite3_wal_hook(db.handle, checkpointWALHook, Unmanaged.passUnretained(self).toOpaque())
    }

    func detach(from db: Connection) {
        sqlite3_wal_hook(db.handle, nil, nil)
    }

    /// Called by the hook after each commit.
    fileprivate func committed(_ db: OpaquePointer?, pages: Int32) -> Int32 {
        if pages >= inlineAt, let db {
            // What SQLite's own automatic checkpoint would do, on the writer (SQLITE_BUSY at once, nothing done,
            // while the thread is running one): the log then starts again from its beginning at the next transaction.
            _ = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
        } else if pages >= wakeAt {
            wake()
        }
        return SQLITE_OK
    }

    /// Checkpoints run so far (for tests).
    var runs: Int { state.withLock { $0.runs } }

    func wake() {
        cond.lock()
        let signal = state.withLock { s -> Bool in
            if s.pending || s.stopping { return false }
            s.pending = true
            return true
        }
        if signal { cond.signal() }
        cond.unlock()
    }

    /// Stops the thread after the checkpoint it may be running and closes its connection.
    func stop() {
        cond.lock()
        state.withLock { $0.stopping = true }
        cond.broadcast()
        while !state.withLock({ $0.stopped }) { cond.wait() }
        cond.unlock()
    }

    private func loop(_ db: Connection) {
        while true {
            cond.lock()
            var stop = false
            while true {
                let (pending, stopping) = state.withLock { s in (s.pending, s.stopping) }
                if stopping { stop = true; break }
                if pending { break }
                cond.wait()
            }
            state.withLock { $0.pending = false }
            cond.unlock()
            if stop { break }
            let rc = sqlite3_wal_checkpoint_v2(db.handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            // SQLITE_BUSY: another checkpoint (the writer's own, past `inlineAt`) was running; the next commit
            // past `wakeAt` wakes this thread again.
            state.withLock { s in
                s.runs += 1
                if rc != SQLITE_OK && rc != SQLITE_BUSY { s.errors += 1 }
            }
        }
    }
}

private func checkpointWALHook(_ context: UnsafeMutableRawPointer?, _ db: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ pages: Int32) -> Int32 {
    guard let context else { return SQLITE_OK }
    return Unmanaged<Checkpointer>.fromOpaque(context).takeUnretainedValue().committed(db, pages: pages)
}
