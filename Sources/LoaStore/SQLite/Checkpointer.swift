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
/// the log grows past ``wakeAt``: to 200 MiB in those runs, and to 412 MB in a 1M-recipient run with a 400 MiB
/// cap. At ``inlineAt`` pages the writer checkpoints itself, as SQLite would: the log never grows without bound.
/// Durability is SQLite's, as before: WAL mode with `synchronous=NORMAL`.
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
        /// Checkpoints run (`SQLITE_BUSY` ones included).
        var runs = 0
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

    /// Sets the writer connection's WAL hook. The hook holds this object: ``detach(from:)`` removes it.
    func attach(to db: Connection) {
        db.onWALCommit { [self] pages in
            // Past `inlineAt` the writer checkpoints itself (`SQLITE_BUSY` at once, nothing done, while this
            // thread is running one): the log then starts again from its beginning at the next transaction.
            if pages >= inlineAt { return true }
            if pages >= wakeAt { wake() }
            return false
        }
    }

    func detach(from db: Connection) {
        db.onWALCommit(nil)
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
        while nextRound() {
            // SQLITE_BUSY: the writer's own checkpoint, past `inlineAt`, was running; the next commit past
            // `wakeAt` wakes this thread again.
            db.checkpointPassive()
            state.withLock { $0.runs += 1 }
        }
    }

    /// Waits until woken (true) or stopping (false).
    private func nextRound() -> Bool {
        cond.lock()
        defer { cond.unlock() }
        while true {
            let go = state.withLock { s -> Bool? in
                if s.stopping { return false }
                if s.pending { s.pending = false; return true }
                return nil
            }
            if let go { return go }
            cond.wait()
        }
    }
}
