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

    /// The checkpoint thread: woken past ``wakeAt`` (wake-ups while it runs one make one more round).
    private let worker = Worker(name: "loa-checkpoint")
    /// Checkpoints run (`SQLITE_BUSY` ones included).
    private let runCount = Mutex(0)

    /// Opens a second connection to `path` and starts the thread.
    init(path: String, wakeAt: Int32, inlineAt: Int32) throws {
        self.wakeAt = wakeAt
        self.inlineAt = inlineAt
        // Owned by the thread from here on, and closed there (when the body returns) before ``stop()`` returns.
        let connection = Handoff(value: Unmanaged.passRetained(try Connection(path: path)).toOpaque())
        worker.start { [self] worker in
            let db = Unmanaged<Connection>.fromOpaque(connection.value).takeRetainedValue()
            while worker.wait() {
                // SQLITE_BUSY: the writer's own checkpoint, past `inlineAt`, was running; the next commit past
                // `wakeAt` wakes this thread again.
                db.checkpointPassive()
                self.runCount.withLock { $0 += 1 }
            }
        }
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
    var runs: Int { runCount.withLock { $0 } }

    func wake() { worker.wake() }

    /// Stops the thread after the checkpoint it may be running and closes its connection.
    func stop() { worker.stop() }
}
