import Foundation
import LoaCore

// Claims before a request leaves (claim records for fresh messages: InFlightBook), failover of queued messages;
// the outcomes are recorded in Outcomes.swift, a start's recovery is in Recovery.swift.

extension Store {
    /// Takes up to `limit` queued messages of one campaign and carrier whose retry time has come, claims them
    /// (committed before this returns, so before any request leaves) and returns them in id order. Fresh messages
    /// (never tried, never held) are claimed by one `claims` row naming them all, their own rows untouched until
    /// their outcome; the others go `sending` row by row. Either way they count as `sending` and read so.
    /// With a contact `policy`, a number that already had its share of messages in the rolling window is held
    /// (`not_before` moves to when it may be contacted again), or expires with reason `frequency-cap` when that
    /// time is at or past `deadline`.
    public func claim(campaign: String, carrier: String, limit: Int, now: UnixMillis,
                      policy: ContactPolicy? = nil, deadline: UnixMillis = .max, until: UnixMillis = .max) throws -> [OutgoingMessage] {
        try write { ctx in
            // The transaction's own time decides: a claim that waited in the writer's queue past the window's
            // close (or the deadline) sends nothing.
            guard ctx.now < until && ctx.now < deadline else { return [] }
            return try ctx.claim(campaign: campaign, carrier: carrier, limit: limit, now: now, policy: policy, deadline: deadline)
        }
    }

    /// Failover: moves up to `limit` queued messages of a campaign from carrier `from` (down) to `to`, logging each
    /// move as a `rerouted` event. Returns how many moved. Messages in flight stay (their answer is still to come);
    /// a moved message gets a `not_before` of at least 1, so the claim's look behind `to`'s cursor finds it.
    public func reroute(campaign: String, from: String, to: String, limit: Int, reason: String) throws -> Int {
        try write { ctx in
            var rows: [(Int64, String?, Int)] = []
            try ctx.queuedRows(campaign: campaign, carrier: from, limit: limit) { rows.append(($0.int("id"), $0.text("phone"), Int($0.int("attempts")))) }
            let upd = try ctx.statement("UPDATE messages SET carrier = ?, not_before = MAX(not_before, 1), updated_at = ? WHERE id = ?")
            for (id, phone, attempts) in rows {
                try upd.run([.text(to), .int(ctx.now), .int(id)])
                try ctx.emit(DeliveryEvent(time: ctx.now, campaign: campaign, message: id, recipient: phone, carrier: to, event: "rerouted",
                                           status: "queued", attempt: attempts, detail: "from \(from): \(reason)"))
            }
            if !rows.isEmpty { ctx.book.dueBehind(InFlightBook.Key(campaign: campaign, carrier: to), at: 1) }
            ctx.moveCount(campaign: campaign, state: .queued, from: from, to: to, by: Int64(rows.count))
            return rows.count
        }
    }

    /// Records send outcomes in one transaction.
    public func record(_ outcomes: [SendOutcome]) throws {
        guard !outcomes.isEmpty else { return }
        try write { ctx in try ctx.record(all: outcomes) }
    }

    /// Records send outcomes without waiting: they join the writer's next transaction (with the dispatcher's
    /// next claim, typically), in the order queued. `failed` is called on the writer thread if the
    /// transaction fails; the messages then stay `sending` and become `unknown` at the next start, never resent.
    /// ``close()`` records whatever is still queued.
    public func recordSoon(_ outcomes: [SendOutcome], failed: @escaping @Sendable (Error) -> Void) {
        guard !outcomes.isEmpty else { return }
        let job = Job({ ctx in try ctx.record(all: outcomes) }) { result in
            if case .failure(let error) = result { failed(error) }
        }
        do { try queueJob(job) } catch { failed(error) }
    }
}

extension WriteContext {
    /// See ``Store/claim(campaign:carrier:limit:now:policy:deadline:until:)``. Due rows behind the campaign and
    /// carrier's cursor first (retries, requeues, holds, moves from another carrier: they go `sending` row by row),
    /// then fresh rows past it, which one `claims` row names and no row update touches.
    func claim(campaign: String, carrier: String, limit: Int, now t: UnixMillis,
               policy: ContactPolicy? = nil, deadline: UnixMillis = .max) throws -> [OutgoingMessage] {
        let key = InFlightBook.Key(campaign: campaign, carrier: carrier)
        var out: [OutgoingMessage] = []
        /// Per message of `out`: fresh (attempts 0, never held), so named by the claim record, not updated.
        var fresh: [Bool] = []
        func message(_ r: Row, _ c: ClaimColumns) -> OutgoingMessage {
            OutgoingMessage(id: r.int(c.id), campaign: campaign, phone: r.text(c.phone) ?? "", carrier: carrier, text: r.text(c.text) ?? "",
                            encoding: r.int(c.encoding) == 1 ? .ucs2 : .gsm7, segments: Int(r.int(c.segments)), attempt: Int(r.int(c.attempts)) + 1)
        }
        let behind = book.cursor(key)
        if book.behindMayBeDue(key, at: t) {
            let due = try statement("""
                SELECT id, phone, text, encoding, segments, attempts FROM messages WHERE campaign_id = ? AND carrier = ? AND state = \(MessageState.queued.rawValue)
                AND id <= ? AND not_before > 0 AND not_before <= ? ORDER BY id LIMIT ?
                """)
            let columns = ClaimColumns(due)
            try due.query([.text(campaign), .text(carrier), .int(behind), .int(t), .int(Int64(limit))]) { r in
                out.append(message(r, columns))
                fresh.append(false)
            }
            if out.count < limit {
                // All due ones taken: the look behind waits for the next that falls due (a scan of the rows behind
                // the cursor, made only while some are queued for later).
                var next: UnixMillis?
                try statement("""
                    SELECT MIN(not_before) AS next FROM messages WHERE campaign_id = ? AND carrier = ? AND state = \(MessageState.queued.rawValue) AND id <= ? AND not_before > ?
                    """).query([.text(campaign), .text(carrier), .int(behind), .int(t)]) { next = $0.isNull("next") ? nil : $0.int("next") }
                book.setBehindDue(key, next)
            }
        }
        var cursor = behind
        var later = UnixMillis.max
        let past = try statement("""
            SELECT id, phone, text, encoding, segments, attempts, not_before FROM messages
            WHERE campaign_id = ? AND carrier = ? AND state = \(MessageState.queued.rawValue) AND id > ? ORDER BY id LIMIT ?
            """)
        let columns = ClaimColumns(past)
        let notBeforeColumn = past.columnIndex("not_before")
        while out.count < limit {
            let want = limit - out.count
            var seen = 0
            try past.query([.text(campaign), .text(carrier), .int(cursor), .int(Int64(want))]) { r in
                seen += 1
                cursor = r.int(columns.id)
                let notBefore = r.int(notBeforeColumn)
                // Not due yet (a retry or hold from before a restart): behind the cursor from now on.
                if notBefore > t { later = min(later, notBefore); return }
                if book.contains(cursor) { return }
                let m = message(r, columns)
                fresh.append(m.attempt == 1 && notBefore == 0)
                out.append(m)
            }
            if seen < want { break }
        }
        if cursor != behind { book.setCursor(key, cursor) }
        if later < .max { book.dueBehind(key, at: later) }
        let suppress = try statement("UPDATE messages SET state = \(MessageState.suppressed.rawValue), reason = ?, detail = ?, updated_at = ? WHERE id = ?")
        // Two lookups per message only when there is anything to find (most campaigns have no opt-outs yet).
        var anySuppression = false
        try statement("SELECT EXISTS(SELECT 1 FROM suppressions) OR EXISTS(SELECT 1 FROM campaign_exclusions WHERE campaign_id = ?) AS any")
            .query([.text(campaign)]) { anySuppression = $0.int("any") != 0 }
        var sending: [OutgoingMessage] = []
        var retried: [Int64] = []
        var named: [Int64] = []
        sending.reserveCapacity(out.count)
        named.reserveCapacity(out.count)
        for (m, isFresh) in zip(out, fresh) {
            // Opted out or excluded after the campaign was submitted: never sent.
            if anySuppression, let reason = try suppressionReason(campaign: campaign, phone: m.phone) {
                try suppress.run([.text(reason), .text("\(reason): found before sending"), .int(now), .int(m.id)])
                count(campaign: campaign, carrier: carrier, from: .queued, to: .suppressed)
                try statement("""
                    INSERT INTO reason_counts(campaign_id, reason, n) VALUES(?, ?, 1)
                    ON CONFLICT(campaign_id, reason) DO UPDATE SET n = n + 1
                    """).run([.text(campaign), .text(reason)])
                try emit(DeliveryEvent(time: now, campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier,
                                       event: "suppressed", status: "suppressed", attempt: m.attempt - 1, detail: "\(reason): found before sending"))
                continue
            }
            if let policy {
                var recent: [UnixMillis] = []
                try statement("SELECT sent_at FROM contacts WHERE phone = ? AND sent_at > ? AND message_id != ?")
                    .query([.text(m.phone), .int(t - policy.windowMillis), .int(m.id)]) { recent.append($0.int("sent_at")) }
                if case .holdUntil(let until) = policy.decide(recent: recent, now: t) {
                    if until >= deadline {
                        try statement("UPDATE messages SET state = \(MessageState.expired.rawValue), reason = 'frequency-cap', detail = ?, updated_at = ? WHERE id = ?")
                            .run([.text("frequency-cap: the number may not be messaged again before the deadline"), .int(now), .int(m.id)])
                        count(campaign: campaign, carrier: carrier, from: .queued, to: .expired)
                        try emit(DeliveryEvent(time: now, campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier, event: "expired",
                                               status: "expired", attempt: m.attempt - 1, detail: "frequency-cap: no allowed time before the deadline"))
                    } else {
                        try statement("UPDATE messages SET not_before = ?, updated_at = ? WHERE id = ?").run([.int(max(until, 1)), .int(now), .int(m.id)])
                        book.dueBehind(key, at: max(until, 1))
                        try emit(DeliveryEvent(time: now, campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier, event: "held",
                                               status: "queued", attempt: m.attempt - 1, detail: "frequency-cap: held until \(ISOTime.format(until))"))
                    }
                    continue
                }
                try statement("INSERT INTO contacts(phone, sent_at, message_id) VALUES(?, ?, ?)").run([.text(m.phone), .int(t), .int(m.id)])
            }
            emit(time: now, campaign: campaign, message: m.id, recipient: m.phone, carrier: carrier, event: "sending", status: "sending", attempt: m.attempt)
            sending.append(m)
            if isFresh { named.append(m.id) } else { retried.append(m.id) }
        }
        // Tried before or held: `sending` row by row, one statement per 100 messages (SQLite's cost of an UPDATE
        // is mostly per statement, a cursor on the table and on each of its indexes, not per row).
        var start = 0
        while start < retried.count {
            let chunk = retried[start..<min(retried.count, start + 100)]
            try statement("UPDATE messages SET state = \(MessageState.sending.rawValue), attempts = attempts + 1, updated_at = ? WHERE id IN (?"
                          + String(repeating: ", ?", count: chunk.count - 1) + ")").run([.int(now)] + chunk.map { .int($0) })
            start += 100
        }
        // Fresh: one row names them all, committed with this transaction, before any request leaves.
        if !named.isEmpty {
            let claimID = book.add(named, key: key)
            try statement("INSERT INTO claims(id, campaign_id, carrier, ids, created_at) VALUES(?, ?, ?, ?, ?)")
                .run([.int(claimID), .text(campaign), .text(carrier), .text(ClaimIDs.encode(named)), .int(now)])
        }
        count(campaign: campaign, carrier: carrier, from: .queued, to: .sending, by: Int64(sending.count))
        return sending
    }

    /// Up to `limit` queued messages of a campaign (of one carrier, or any), in id order, that are not in flight:
    /// `row` gets the columns `id`, `phone`, `carrier` and `attempts` of each.
    func queuedRows(campaign: String, carrier: String? = nil, limit: Int, _ row: (Row) throws -> Void) throws {
        var after: Int64 = 0
        var taken = 0
        let st = try statement(carrier == nil
            ? "SELECT id, phone, carrier, attempts FROM messages WHERE campaign_id = ? AND state = \(MessageState.queued.rawValue) AND id > ? ORDER BY id LIMIT ?"
            : "SELECT id, phone, carrier, attempts FROM messages WHERE campaign_id = ? AND carrier = ? AND state = \(MessageState.queued.rawValue) AND id > ? ORDER BY id LIMIT ?")
        let key: [SQLValue] = carrier.map { [.text(campaign), .text($0)] } ?? [.text(campaign)]
        while taken < limit {
            let want = limit - taken
            var seen = 0
            try st.query(key + [.int(after), .int(Int64(want))]) { r in
                seen += 1
                after = r.int("id")
                guard !book.contains(after) else { return }
                taken += 1
                try row(r)
            }
            if seen < want { break }
        }
    }

    /// Settles a fresh message in flight: out of the book, and its claim record deleted once it names none in flight.
    func settleFresh(_ id: Int64) throws {
        if let claim = book.settle(id) { try statement("DELETE FROM claims WHERE id = ?").run([.int(claim)]) }
    }
}

/// Where a claim's SELECTs have the columns of an ``OutgoingMessage``: looked up by name once per claim, not
/// once per row and column (a claim reads seven columns of each of up to a thousand rows).
struct ClaimColumns {
    let id, phone, text, encoding, segments, attempts: Int32

    init(_ st: Statement) {
        id = st.columnIndex("id")
        phone = st.columnIndex("phone")
        text = st.columnIndex("text")
        encoding = st.columnIndex("encoding")
        segments = st.columnIndex("segments")
        attempts = st.columnIndex("attempts")
    }
}

/// The ids a claim record names, as ascending runs: `first-last` or `id`, comma-separated (a claim of consecutive
/// ids, the usual case, is a few bytes).
enum ClaimIDs {
    static func encode(_ ids: [Int64]) -> String {
        var parts: [String] = []
        var i = 0
        while i < ids.count {
            var j = i
            while j + 1 < ids.count && ids[j + 1] == ids[j] + 1 { j += 1 }
            parts.append(j == i ? String(ids[i]) : "\(ids[i])-\(ids[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    /// Nil when the text is not such a list.
    static func decode(_ text: String) -> [Int64]? {
        var out: [Int64] = []
        for part in text.split(separator: ",") {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard ends.count <= 2, let first = Int64(ends[0]), let last = Int64(ends[ends.count - 1]), 0 <= first, first <= last,
                  last - first < 10_000_000 else { return nil }
            out.append(contentsOf: first...last)
        }
        return out
    }
}

extension Store {
    /// Rows the writer's connection has inserted, updated or deleted since it opened (`sqlite3_total_changes`):
    /// the store's writes, for tests and benchmarks.
    func totalChanges() throws -> Int {
        try write { ctx in Int(ctx.db.totalChanges) }
    }
}
