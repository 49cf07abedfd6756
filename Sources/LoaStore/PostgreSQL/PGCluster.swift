import Foundation
import LoaCore
import Synchronization

/// This node's lease in the `nodes` table, renewed on a thread and a connection of its own, and the cluster's
/// members as each renewal reads them (``ClusterLease``).
///
/// Every time is the database's (`loa_now_ms()`, one clock for all nodes), except the local end of the lease, which
/// is `CLOCK_BOOTTIME` (it counts while the process is stopped and while the machine sleeps) from when the renewal
/// was sent plus the lease's length: earlier than the database's end, which is taken later, at the statement.
///
/// Each round (a quarter of the lease):
/// 1. renew: `lease_until = now + lease` where the node and epoch match and the lease has not ended. No row: the lease
///    is lost (the node was stopped or cut off past it); observers hear `.lost`, and the node takes a new epoch on the
///    store's writer after turning its own `sending` messages into `unknown` (``PGContext/regainLease(_:)``).
/// 2. read the members (and publish this node's status, ``publish(status:)``).
/// 3. look for dead nodes: a lease over by more than the grace (a fifth of the lease) whose epoch is not yet settled;
///    the store's writer settles each one's claims as `unknown` (``PGContext/takeOver(node:epoch:grace:)``), several
///    survivors at once doing it once (the node's row is locked, `SKIP LOCKED`).
/// A failed round (the database is down) leaves the local end as it was: it passes, and the node stops sending.
public final class PGCluster: ClusterLease {
    public let node: String
    public let leaseMillis: Int64
    var graceMillis: Int64 { max(200, leaseMillis / 5) }
    /// `CLOCK_BOOTTIME` nanoseconds until which the lease is held here; 0: not held.
    private let validUntil = Atomic<UInt64>(0)
    private let currentEpoch = Atomic<Int64>(0)
    private struct Shared {
        var members: [ClusterMember] = []
        var observers: [@Sendable (ClusterEvent) -> Void] = []
        var status: String?
        var lost = false
        var failing: String?
    }
    private let shared = Mutex(Shared())
    let worker = Worker(name: "loa-pg-lease")
    private let logger: Logger
    /// For tests: rounds do nothing, as if the process were stopped (SIGSTOP) while the rest of it runs.
    let suspended = Atomic<Bool>(false)
    /// For tests of a real daemon (`LOA_TEST_LEASE_PAUSE_FILE`): while this file exists, ``suspended`` is set (the
    /// lease thread stalls while the daemon still answers, as `/readyz` must). Nil: off.
    private static let pauseFile = ProcessInfo.processInfo.environment["LOA_TEST_LEASE_PAUSE_FILE"].flatMap { $0.isEmpty ? nil : $0 }

    init(node: String, leaseMillis: Int64, logger: Logger) {
        self.node = node
        self.leaseMillis = leaseMillis
        self.logger = logger
    }

    /// Nanoseconds on `CLOCK_BOOTTIME`.
    static func bootNanos() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_BOOTTIME, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    public func holds() -> Bool {
        let until = validUntil.load(ordering: .acquiring)
        return until != 0 && Self.bootNanos() < until
    }

    /// The epoch of the lease held (or last held).
    public var epoch: Int64 { currentEpoch.load(ordering: .acquiring) }

    public func members() -> [ClusterMember] { shared.withLock { $0.members } }

    public func observe(_ observer: @escaping @Sendable (ClusterEvent) -> Void) { shared.withLock { $0.observers.append(observer) } }

    /// This node's status as the next renewal writes it (`nodes.status`, JSON): what other nodes show of it.
    public func publish(status: String?) { shared.withLock { $0.status = status } }

    /// The lease was granted (or renewed) by a statement sent at `sentAt` (``bootNanos()``).
    func granted(epoch: Int64, sentAt: UInt64) {
        currentEpoch.store(epoch, ordering: .releasing)
        validUntil.store(sentAt + UInt64(leaseMillis) * 1_000_000, ordering: .releasing)
    }

    private func tell(_ event: ClusterEvent) {
        for observer in shared.withLock({ $0.observers }) { observer(event) }
    }

    /// Starts the renewals on `db` (a connection of the lease's own). `store` runs jobs on the store's writer.
    func start(db: PGConnection, store: PostgresStore) {
        let handoff = Handoff(value: db)
        worker.start { [self] worker in
            let db = handoff.value
            while worker.wait(until: .after(seconds: Double(leaseMillis) / 4000)) {
                round(db, store: store)
            }
            // A clean stop lets go of the lease at once; a survivor's next sweep finds nothing of ours to settle.
            _ = try? db.prepare("UPDATE nodes SET lease_until = 0 WHERE node = ? AND epoch = ?").run([.text(node), .int(epoch)])
            db.finish()
        }
    }

    func stop() { worker.stop(by: .after(seconds: 10)) }

    private func round(_ db: PGConnection, store: PostgresStore) {
        if let file = Self.pauseFile { suspended.store(FileManager.default.fileExists(atPath: file), ordering: .relaxed) }
        if suspended.load(ordering: .relaxed) { return }
        do {
            if !db.isOK { try db.reconnect() }
            let sentAt = Self.bootNanos()
            let status = shared.withLock { $0.status }
            var renewed = false
            try db.prepare("""
                UPDATE nodes SET lease_until = loa_now_ms() + ?, renewed_at = loa_now_ms(), status = COALESCE(?, status)
                WHERE node = ? AND epoch = ? AND lease_until > loa_now_ms() RETURNING epoch
                """).query([.int(leaseMillis), .opt(status), .text(node), .int(epoch)]) { _ in renewed = true }
            if renewed {
                granted(epoch: epoch, sentAt: sentAt)
            } else {
                try regain(store: store)
            }
            if let was = shared.withLock({ s -> String? in defer { s.failing = nil }; return s.failing }) {
                logger.notice("the lease is renewed again", ["store.node": node, "after": was])
            }
            var members: [ClusterMember] = []
            var dbNow: Int64 = 0
            try db.prepare("""
                SELECT node, epoch, lease_until, renewed_at, joined_at, status, loa_now_ms() AS now FROM nodes ORDER BY node
                """).query { r in
                dbNow = r.int("now")
                members.append(ClusterMember(node: r.text("node") ?? "", epoch: r.int("epoch"), leaseUntil: r.int("lease_until"),
                                             renewedAt: r.int("renewed_at"), joinedAt: r.int("joined_at"), alive: r.int("lease_until") > r.int("now"),
                                             status: r.text("status")))
            }
            shared.withLock { $0.members = members }
            tell(.members(members, databaseNow: dbNow))
            for dead in members where !dead.alive && dead.node != node && dead.leaseUntil < dbNow - graceMillis {
                try takeOver(dead, db: db, store: store)
            }
        } catch {
            let first = shared.withLock { s -> Bool in
                defer { s.failing = "\(error)" }
                return s.failing == nil
            }
            if first {
                logger.error("the lease cannot be renewed: this node stops sending when it ends", ["store.node": node, "error": "\(error)",
                             "lease_ms": "\(leaseMillis)"])
            }
        }
    }

    /// The lease ended in the database: stop sending, settle this node's claims, take a new epoch.
    private func regain(store: PostgresStore) throws {
        let first = shared.withLock { s -> Bool in
            defer { s.lost = true }
            return !s.lost
        }
        validUntil.store(0, ordering: .releasing)
        if first {
            logger.error("this node's lease ended: it sends nothing until it holds one again", ["store.node": node, "epoch": "\(epoch)"])
            tell(.lost(reason: "the lease ended in the database"))
        }
        let sentAt = Self.bootNanos()
        let lease = leaseMillis
        let (epoch, settled) = try store.write { ctx in try ctx.regainLease(lease) }
        granted(epoch: epoch, sentAt: sentAt)
        shared.withLock { $0.lost = false }
        logger.notice("this node holds a lease again", ["store.node": node, "epoch": "\(epoch)", "settled_unknown": "\(settled)"])
        tell(.regained(epoch: epoch, settled: settled))
    }

    /// A dead node's unsettled claims become `unknown` through this survivor.
    private func takeOver(_ dead: ClusterMember, db: PGConnection, store: PostgresStore) throws {
        var unsettled = false
        try db.prepare("SELECT recovered_epoch < epoch AS unsettled FROM nodes WHERE node = ?").query([.text(dead.node)]) {
            unsettled = $0.int("unsettled") != 0
        }
        guard unsettled else { return }
        let grace = graceMillis
        let settled = try store.write { ctx in try ctx.takeOver(node: dead.node, epoch: dead.epoch, grace: grace) }
        guard let settled else { return }
        logger.warning("a node's lease ended: its claims not settled are unknown, never resent",
                       ["store.node": node, "dead.node": dead.node, "dead.epoch": "\(dead.epoch)", "settled_unknown": "\(settled)"])
        tell(.tookOver(node: dead.node, epoch: dead.epoch, settled: settled))
    }
}

extension PostgresStore: ClusteredStore {
    public var clusterLease: any ClusterLease { cluster }
}

extension PGContext {
    /// Takes this node's first lease at start (on the writer's connection, before the recovery of its claims).
    func acquireLease(_ lease: Int64) throws -> Int64 {
        var epoch: Int64 = 0
        try query("""
            UPDATE nodes SET epoch = epoch + 1, lease_until = loa_now_ms() + ?, renewed_at = loa_now_ms(), joined_at = loa_now_ms()
            WHERE node = ? RETURNING epoch
            """, [.int(lease), .text(node)]) { epoch = $0.int("epoch") }
        return epoch
    }

    /// A new epoch after a lost lease, this node's claims settled first (in the same transaction).
    func regainLease(_ lease: Int64) throws -> (epoch: Int64, settled: Int) {
        let settled = try settleSending(of: node, detail: "this node's lease ended before the answer was recorded; not resent")
        return (try acquireLease(lease), settled)
    }

    /// Settles a dead node's claims as `unknown` if its lease (at `epoch`) is still over by `grace` and unsettled;
    /// nil when another survivor holds or did it, or the node came back.
    func takeOver(node dead: String, epoch: Int64, grace: Int64) throws -> Int? {
        var mine = false
        try query("""
            SELECT 1 AS mine FROM nodes WHERE node = ? AND epoch = ? AND recovered_epoch < epoch AND lease_until < loa_now_ms() - ?
            FOR UPDATE SKIP LOCKED
            """, [.text(dead), .int(epoch), .int(grace)]) { _ in mine = true }
        guard mine else { return nil }
        let n = try settleSending(of: dead, detail: "node \(dead)'s lease ended while the request was in flight; not resent")
        try run("UPDATE nodes SET recovered_epoch = epoch WHERE node = ?", [.text(dead)])
        return n
    }

    /// A node's `sending` messages become `unknown` (logged here, counted on this node): their request may have
    /// left; never resent. Returns how many.
    @discardableResult
    func settleSending(of owner: String, detail: String) throws -> Int {
        var rows: [(Int64, String, String?, String, Int)] = []
        try query("SELECT id, campaign_id, phone, carrier, attempts FROM messages WHERE state = \(PGSchema.sending) AND node = ? ORDER BY id FOR UPDATE",
                  [.text(owner)]) { rows.append(($0.int("id"), $0.text("campaign_id") ?? "", $0.text("phone"), $0.text("carrier") ?? "", Int($0.int("attempts")))) }
        guard !rows.isEmpty else { return 0 }
        var perCampaign: [String: Int64] = [:]
        try run("UPDATE messages SET state = ?, detail = ?, updated_at = ? WHERE id = ANY(?::bigint[])",
                [.int(Int64(MessageState.unknown.rawValue)), .text(detail), .int(now), .text(Self.idArray(rows.map(\.0)))])
        for (id, campaign, phone, carrier, attempts) in rows {
            count(campaign: campaign, carrier: carrier, from: .sending, to: .unknown)
            emit(campaign: campaign, message: id, recipient: phone, carrier: carrier, event: "unknown", status: "unknown", attempt: attempts, detail: detail)
            perCampaign[campaign, default: 0] += 1
        }
        for (campaign, n) in perCampaign {
            try run("UPDATE campaigns SET recovered_unknown = recovered_unknown + ? WHERE id = ?", [.int(n), .text(campaign)])
        }
        recovery.unknownMessages += Int64(rows.count)
        for (c, n) in perCampaign { recovery.unknownByCampaign[c, default: 0] += n }
        return rows.count
    }

    /// Whether this node holds its lease in the database now (checked in a claim's transaction: a node whose lease
    /// ended claims nothing, whatever it believes).
    func holdsLease(epoch: Int64) throws -> Bool {
        var held = false
        try query("SELECT 1 AS held FROM nodes WHERE node = ? AND epoch = ? AND lease_until > loa_now_ms()", [.text(node), .int(epoch)]) { _ in held = true }
        return held
    }
}
