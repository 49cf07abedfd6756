import LoaCore

extension Store {
    /// Messages of `carriers` handed to their gateway and not known to be passed on: `sent`, with no receipt yet
    /// (no smsc-accepted, buffered or final one), and when they were handed over (the gateway's acceptance, else
    /// the last change). The dispatcher's ``HandoffWindow``s start from these after a restart, so a daemon that
    /// restarts does not hand a queueing gateway a second window's worth.
    ///
    /// A scan of the `sent` messages (the partial index `messages_sent_age`), once per start.
    public func handedOverNotPassedOn(carriers: [String]) throws -> [(id: Int64, carrier: String, at: UnixMillis)] {
        guard !carriers.isEmpty else { return [] }
        let wanted = Set(carriers)
        return try write { ctx in
            var out: [(id: Int64, carrier: String, at: UnixMillis)] = []
            try ctx.statement("SELECT id, carrier, COALESCE(sent_at, updated_at) AS at FROM messages WHERE state = \(MessageState.sent.rawValue) AND receipt_rank = 0")
                .query { r in
                    let carrier = r.text("carrier") ?? ""
                    if wanted.contains(carrier) { out.append((r.int("id"), carrier, r.int("at"))) }
                }
            return out
        }
    }

    /// The streamed form: rows handed over at or after `since`, in batches of `batchSize`, in id order (the
    /// ``HandoffWindow`` sorts by time itself). `body` runs on the writer thread inside the read.
    public func handedOverNotPassedOn(carriers: [String], since: UnixMillis,
                                      batches body: @escaping @Sendable ([(id: Int64, carrier: String, at: UnixMillis)]) -> Void) throws {
        try handedOverNotPassedOn(carriers: carriers, since: since, batchSize: 10_000, batches: body)
    }

    func handedOverNotPassedOn(carriers: [String], since: UnixMillis, batchSize: Int,
                               batches body: @escaping @Sendable ([(id: Int64, carrier: String, at: UnixMillis)]) -> Void) throws {
        guard !carriers.isEmpty else { return }
        let wanted = Set(carriers)
        try write { ctx in
            var batch: [(id: Int64, carrier: String, at: UnixMillis)] = []
            batch.reserveCapacity(batchSize)
            try ctx.statement("""
                SELECT id, carrier, COALESCE(sent_at, updated_at) AS at FROM messages
                WHERE state = \(MessageState.sent.rawValue) AND receipt_rank = 0 AND COALESCE(sent_at, updated_at) >= ?
                """)
                .query([.int(since)]) { r in
                    let carrier = r.text("carrier") ?? ""
                    guard wanted.contains(carrier) else { return }
                    batch.append((r.int("id"), carrier, r.int("at")))
                    if batch.count >= batchSize {
                        body(batch)
                        batch.removeAll(keepingCapacity: true)
                    }
                }
            if !batch.isEmpty { body(batch) }
        }
    }
}
