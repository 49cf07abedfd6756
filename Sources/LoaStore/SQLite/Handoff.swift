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
}
