import LoaCore

/// What the writer thread knows of messages claimed fresh (never tried, never held) and not yet settled. Their
/// rows are not written at claim: one `claims` row per claim names them (durable before any request leaves, so a
/// start after a crash finds them), and the row of each is written once, by its outcome. Until then a fresh
/// message's row still reads `queued` (state 0, attempts 0, not_before 0); everything that takes queued rows asks
/// this book first, and the per-(campaign, carrier) cursor keeps the next claim from taking them again.
///
/// The invariants the claim path relies on, per (campaign, carrier):
/// - no row past the cursor is in flight;
/// - a queued row at or behind the cursor with `not_before = 0` is in flight (every other queued row behind it was
///   given a `not_before` of 1 or more: a retry, a requeue, a hold, a move from another carrier);
/// - `behindDue` is at or before the earliest `not_before` of queued rows behind the cursor.
///
/// Every change is journalled, so that a job rolled back to its savepoint, or a transaction that fails, leaves the
/// book as it was (``undo(to:)``); a committed transaction clears the journal (``commit()``).
struct InFlightBook {
    struct Key: Hashable {
        var campaign: String
        var carrier: String
    }

    struct Claim {
        var key: Key
        var unsettled: Int
    }

    /// Message id → the id of the `claims` row naming it.
    private(set) var messages: [Int64: Int64] = [:]
    private(set) var claims: [Int64: Claim] = [:]
    private var cursors: [Key: Int64] = [:]
    private var behindDue: [Key: UnixMillis] = [:]
    /// The next `claims` row id (set at start from the table's largest).
    var nextClaimID: Int64 = 1

    private enum Change {
        case added(claim: Int64, ids: [Int64])
        case settled(message: Int64, claim: Int64, key: Key)
        case cursor(Key, Int64?)
        case behindDue(Key, UnixMillis?)
        case nextClaimID(Int64)
    }
    private var journal: [Change] = []

    var mark: Int { journal.count }

    func contains(_ id: Int64) -> Bool { messages[id] != nil }

    func cursor(_ key: Key) -> Int64 { cursors[key] ?? 0 }

    /// Whether queued rows behind the cursor may be due at `t`.
    func behindMayBeDue(_ key: Key, at t: UnixMillis) -> Bool { (behindDue[key] ?? .max) <= t }

    mutating func setCursor(_ key: Key, _ id: Int64) {
        journal.append(.cursor(key, cursors[key]))
        cursors[key] = id
    }

    /// A queued row behind the cursor falls due at `time` (a retry, a requeue, a hold, a move from another carrier).
    mutating func dueBehind(_ key: Key, at time: UnixMillis) {
        let old = behindDue[key]
        guard time < (old ?? .max) else { return }
        journal.append(.behindDue(key, old))
        behindDue[key] = time
    }

    /// After a look behind the cursor: the earliest `not_before` still there (nil: none).
    mutating func setBehindDue(_ key: Key, _ time: UnixMillis?) {
        journal.append(.behindDue(key, behindDue[key]))
        behindDue[key] = time
    }

    /// Opens a claim for `ids`; returns its id.
    mutating func add(_ ids: [Int64], key: Key) -> Int64 {
        let id = nextClaimID
        journal.append(.nextClaimID(id))
        nextClaimID += 1
        claims[id] = Claim(key: key, unsettled: ids.count)
        for m in ids { messages[m] = id }
        journal.append(.added(claim: id, ids: ids))
        return id
    }

    /// Settles one message; returns the id of its claim when that claim has none left in flight.
    mutating func settle(_ message: Int64) -> Int64? {
        guard let claim = messages.removeValue(forKey: message), var c = claims[claim] else { return nil }
        journal.append(.settled(message: message, claim: claim, key: c.key))
        c.unsettled -= 1
        claims[claim] = c.unsettled == 0 ? nil : c
        return c.unsettled == 0 ? claim : nil
    }

    /// The claim a message in flight belongs to.
    func key(of message: Int64) -> Key? { messages[message].flatMap { claims[$0]?.key } }

    /// The ids in flight of one campaign.
    func ids(campaign: String) -> [Int64] {
        var out: [Int64] = []
        for (m, c) in messages where claims[c]?.key.campaign == campaign { out.append(m) }
        return out.sorted()
    }

    mutating func commit() { journal.removeAll(keepingCapacity: true) }

    /// Undoes every change journalled since `mark`, newest first.
    mutating func undo(to mark: Int) {
        while journal.count > mark {
            switch journal.removeLast() {
            case .added(let claim, let ids):
                for m in ids { messages[m] = nil }
                claims[claim] = nil
            case .settled(let message, let claim, let key):
                messages[message] = claim
                claims[claim, default: Claim(key: key, unsettled: 0)].unsettled += 1
            case .cursor(let key, let old): cursors[key] = old
            case .behindDue(let key, let old): behindDue[key] = old
            case .nextClaimID(let old): nextClaimID = old
            }
        }
    }
}
