import Foundation
import LoaCore

// Loading a campaign's rows on PostgreSQL: the same rules as SQLite's Ingest.swift (the first of each number is kept,
// later ones are duplicates listed in `skipped`; rejects and suppressed numbers are rows that are never sent), in a
// few statements per batch instead of one INSERT per row.

extension PGContext {
    /// One batch of a segment (``SegmentReader`` sends 5,000 rows at a time): its numbers' suppressions in one query,
    /// its rows in one `INSERT … SELECT FROM unnest(arrays) … ON CONFLICT DO NOTHING`, its duplicates in one more.
    /// One INSERT per row cost a round trip and a statement per recipient (see `Tests/Benchmarks/cluster.sh`'s ingest
    /// column for the figures). The rows go in file order, so ids follow the file as they did row by row; the delivery
    /// log's lines, the counters and the preview are made in file order after the INSERT, from what it returned.
    func ingest(campaign: String, rows: [IngestRow]) throws -> IngestCounts {
        try requireState(campaign, .loading)
        var c = IngestCounts()
        var reasons: [String: Int64] = [:]
        var preview = try storedPreview(campaign) ?? CampaignPreview()
        // What goes in: every rejected row and the first row of each number; a later row of a number in the same batch
        // is a duplicate of it, as one of an earlier batch is (the INSERT's conflict).
        var firstRow: [String: Int] = [:]
        var insertRows: [Int] = []
        insertRows.reserveCapacity(rows.count)
        for (i, row) in rows.enumerated() {
            switch row {
            case .accepted(let phone, _, _, _, _, _, _, _, _, _):
                if firstRow[phone] == nil {
                    firstRow[phone] = i
                    insertRows.append(i)
                }
            case .rejected: insertRows.append(i)
            }
        }
        let suppressed = try anySuppression(campaign) ? try suppressionReasons(campaign: campaign, phones: Array(firstRow.keys)) : [:]
        let ids = try insertMessages(campaign: campaign, rows: rows, indexes: insertRows, firstRow: firstRow, suppressed: suppressed)
        var duplicates: [(source: String, line: Int, raw: String, phone: String)] = []
        for (i, row) in rows.enumerated() {
            c.rows += 1
            switch row {
            case .accepted(let phone, let carrier, _, _, let segments, let source, let line, let raw, _, _):
                let suppression = suppressed[phone]
                let id = firstRow[phone] == i ? ids[i] : nil
                preview.count(row, duplicate: id == nil, suppression: suppression.flatMap(PreviewTotals.Suppression.init(rawValue:)))
                guard let id else {
                    c.duplicates += 1
                    reasons["duplicate", default: 0] += 1
                    duplicates.append((source, line, raw, phone))
                    continue
                }
                if let suppression {
                    c.suppressed += 1
                    reasons[suppression, default: 0] += 1
                    count(campaign: campaign, carrier: carrier, from: nil, to: .suppressed)
                    emit(campaign: campaign, message: id, recipient: phone, carrier: carrier, event: "suppressed", status: "suppressed", attempt: 0,
                         detail: "\(source):\(line): \(suppression)")
                } else {
                    c.accepted += 1
                    c.segments += Int64(segments)
                    count(campaign: campaign, carrier: carrier, from: nil, to: .queued)
                }
            case .rejected(_, let code, let message, let source, let line):
                c.rejected += 1
                reasons[code, default: 0] += 1
                preview.count(row, duplicate: false, suppression: nil)
                count(campaign: campaign, carrier: "", from: nil, to: .rejected)
                emit(campaign: campaign, message: ids[i] ?? 0, recipient: nil, carrier: nil, event: "rejected", status: "rejected", attempt: 0,
                     detail: "\(source):\(line): \(code): \(message)")
            }
        }
        if !duplicates.isEmpty {
            var sources = PGArrayText(), lines = PGArrayText(), raws = PGArrayText(), details = PGArrayText()
            for d in duplicates {
                sources.append(d.source)
                lines.append(Int64(d.line))
                raws.append(d.raw)
                details.append("the number \(d.phone) is already in this campaign")
            }
            try run("""
                INSERT INTO skipped(campaign_id, source, line, raw, reason, detail)
                SELECT ?, t.source, t.line, t.raw, 'duplicate', t.detail
                FROM unnest(?::text[], ?::bigint[], ?::text[], ?::text[]) WITH ORDINALITY AS t(source, line, raw, detail, ord) ORDER BY t.ord
                """, [.text(campaign), .text(sources.text), .text(lines.text), .text(raws.text), .text(details.text)])
        }
        try run("""
            UPDATE campaigns SET rows = rows + ?, accepted = accepted + ?, rejected = rejected + ?, duplicates = duplicates + ?,
            segments_total = segments_total + ?, updated_at = ? WHERE id = ?
            """, [.int(c.rows), .int(c.accepted), .int(c.rejected), .int(c.duplicates), .int(c.segments), .int(now), .text(campaign)])
        for (reason, n) in reasons.sorted(by: { $0.key < $1.key }) { try bumpReason(campaign, reason, by: n) }
        try run("UPDATE campaigns SET preview = ? WHERE id = ?",
                [.text(String(decoding: try JSONEncoder().encode(preview), as: UTF8.self)), .text(campaign)])
        return c
    }

    /// The rows `indexes` of `rows` into `messages`, in that order, in one statement; returns each inserted row's id by
    /// its index (an accepted row absent from the result was a number already in the campaign). Accepted rows are found
    /// again by their number (unique in what goes in); rejected rows have none, and come back in the order they went
    /// in: ids are drawn as the rows are inserted, in `ord` order.
    private func insertMessages(campaign: String, rows: [IngestRow], indexes: [Int], firstRow: [String: Int],
                                suppressed: [String: String]) throws -> [Int: Int64] {
        guard !indexes.isEmpty else { return [:] }
        var phone = PGArrayText(), raw = PGArrayText(), carrier = PGArrayText(), source = PGArrayText(), line = PGArrayText()
        var text = PGArrayText(), encoding = PGArrayText(), segments = PGArrayText(), state = PGArrayText(), detail = PGArrayText()
        var reason = PGArrayText(), group = PGArrayText()
        var rejectedRows: [Int] = []
        for i in indexes {
            switch rows[i] {
            case .accepted(let p, let k, let t, let e, let s, let src, let l, let r, let g, _):
                let suppression = suppressed[p]
                phone.append(p); raw.append(r); carrier.append(k); source.append(src); line.append(Int64(l)); text.append(t)
                encoding.append(e == .ucs2 ? 1 : 0); segments.append(Int64(s))
                state.append(Int64((suppression == nil ? MessageState.queued : .suppressed).rawValue))
                detail.append(suppression.map { "\($0): not sent" }); reason.append(suppression); group.append(g)
            case .rejected(let r, let code, let message, let src, let l):
                rejectedRows.append(i)
                phone.append(nil); raw.append(r); carrier.append(""); source.append(src); line.append(Int64(l)); text.append(nil)
                encoding.append(0); segments.append(0); state.append(Int64(MessageState.rejected.rawValue))
                detail.append(message); reason.append(code); group.append(nil)
            }
        }
        var ids: [Int: Int64] = [:]
        ids.reserveCapacity(indexes.count)
        var rejectedIDs: [Int64] = []
        try query("""
            INSERT INTO messages(campaign_id, phone, raw_phone, carrier, source, line, text, encoding, segments, state, detail, reason, updated_at, grp)
            SELECT ?, t.phone, t.raw, t.carrier, t.source, t.line, t.text, t.encoding, t.segments, t.state, t.detail, t.reason, ?, t.grp
            FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::integer[], ?::integer[], ?::integer[], ?::text[],
                        ?::text[], ?::text[])
                 WITH ORDINALITY AS t(phone, raw, carrier, source, line, text, encoding, segments, state, detail, reason, grp, ord)
            ORDER BY t.ord
            ON CONFLICT DO NOTHING RETURNING id, phone
            """, [.text(campaign), .int(now), .text(phone.text), .text(raw.text), .text(carrier.text), .text(source.text), .text(line.text),
                  .text(text.text), .text(encoding.text), .text(segments.text), .text(state.text), .text(detail.text), .text(reason.text),
                  .text(group.text)]) { r in
            if let p = r.text("phone"), let i = firstRow[p] { ids[i] = r.int("id") } else { rejectedIDs.append(r.int("id")) }
        }
        guard rejectedIDs.count == rejectedRows.count else {
            throw StoreError.io("campaign \(campaign): \(rejectedRows.count) rejected rows went in, \(rejectedIDs.count) came back")
        }
        for (i, id) in zip(rejectedRows, rejectedIDs.sorted()) { ids[i] = id }
        changes += Int64(ids.count)
        return ids
    }

    /// The numbers of `phones` that must not be sent: `opt-out` (the global list) before `excluded` (the campaign's).
    func suppressionReasons(campaign: String, phones: [String]) throws -> [String: String] {
        guard !phones.isEmpty else { return [:] }
        var list = PGArrayText()
        for p in phones { list.append(p) }
        var out: [String: String] = [:]
        try query("""
            SELECT p.phone, EXISTS(SELECT 1 FROM suppressions s WHERE s.phone = p.phone) AS opt_out,
                   EXISTS(SELECT 1 FROM campaign_exclusions e WHERE e.campaign_id = ? AND e.phone = p.phone) AS excluded
            FROM unnest(?::text[]) AS p(phone)
            """, [.text(campaign), .text(list.text)]) { r in
            if r.int("opt_out") != 0 { out[r.text("phone") ?? ""] = "opt-out" } else if r.int("excluded") != 0 { out[r.text("phone") ?? ""] = "excluded" }
        }
        return out
    }
}

/// The text of a PostgreSQL array parameter (`{"a",NULL,"b"}`, `{1,2}`), written into one buffer: elements quoted,
/// `"` and `\` escaped (https://www.postgresql.org/docs/15/arrays.html#ARRAYS-IO). A NUL inside a text becomes U+2400
/// when the parameter is bound, as for any text.
struct PGArrayText {
    private var bytes: [UInt8] = [UInt8(ascii: "{")]

    private mutating func separate() { if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) } }

    mutating func append(_ s: String?) {
        separate()
        guard let s else { bytes += "NULL".utf8; return }
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { bytes.append(UInt8(ascii: "\\")) }
            bytes.append(b)
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func append(_ n: Int64) {
        separate()
        bytes += String(n).utf8
    }

    var text: String { String(decoding: bytes, as: UTF8.self) + "}" }
}
