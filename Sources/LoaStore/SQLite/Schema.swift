/// Versioned schema migrations, applied in order inside one transaction each; `PRAGMA user_version`
/// records the last one applied. Never edit a shipped migration: add the next one.
enum Schema {
    static let migrations: [String] = [
        // 1: campaigns, one row per recipient, per-(campaign, carrier, state) counters, the delivery-log outbox.
        """
        CREATE TABLE campaigns (
            id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            spec TEXT NOT NULL,
            sender TEXT NOT NULL,
            start_at INTEGER NOT NULL,
            deadline_at INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            rows INTEGER NOT NULL DEFAULT 0,
            accepted INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            segments_total INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            campaign_id TEXT NOT NULL,
            phone TEXT,
            raw_phone TEXT,
            carrier TEXT NOT NULL DEFAULT '',
            source TEXT,
            line INTEGER,
            text TEXT,
            encoding INTEGER NOT NULL DEFAULT 0,
            segments INTEGER NOT NULL DEFAULT 1,
            state INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            not_before INTEGER NOT NULL DEFAULT 0,
            gateway_id TEXT,
            receipt_rank INTEGER NOT NULL DEFAULT 0,
            detail TEXT,
            updated_at INTEGER NOT NULL
        );
        CREATE UNIQUE INDEX messages_dedup ON messages(campaign_id, phone);
        CREATE INDEX messages_queue ON messages(campaign_id, carrier, id) WHERE state = 0;
        CREATE INDEX messages_sending ON messages(id) WHERE state = 1;
        CREATE TABLE counts (
            campaign_id TEXT NOT NULL,
            carrier TEXT NOT NULL,
            state INTEGER NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (campaign_id, carrier, state)
        ) WITHOUT ROWID;
        CREATE TABLE log_outbox (seq INTEGER PRIMARY KEY, line TEXT NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        """,
        // 2: opt-outs and exclusions, rows skipped at ingest (duplicates), per-campaign counts by reason.
        """
        ALTER TABLE messages ADD COLUMN reason TEXT;
        CREATE INDEX messages_rejects ON messages(campaign_id, id) WHERE state IN (5, 9);
        CREATE TABLE suppressions (phone TEXT PRIMARY KEY, source TEXT NOT NULL, added_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE campaign_exclusions (
            campaign_id TEXT NOT NULL,
            phone TEXT NOT NULL,
            PRIMARY KEY (campaign_id, phone)
        ) WITHOUT ROWID;
        CREATE TABLE skipped (
            id INTEGER PRIMARY KEY,
            campaign_id TEXT NOT NULL,
            source TEXT,
            line INTEGER,
            raw TEXT,
            reason TEXT NOT NULL,
            detail TEXT
        );
        CREATE INDEX skipped_campaign ON skipped(campaign_id, id);
        CREATE TABLE reason_counts (
            campaign_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (campaign_id, reason)
        ) WITHOUT ROWID;
        """,
        // 3: contacts per number across campaigns, for the frequency cap.
        """
        CREATE TABLE contacts (phone TEXT NOT NULL, sent_at INTEGER NOT NULL, message_id INTEGER NOT NULL);
        CREATE INDEX contacts_phone ON contacts(phone, sent_at);
        CREATE INDEX contacts_time ON contacts(sent_at);
        """,
        // 4: find a number's queued messages (opt-out replies; dropped in 7) and overdue receipts fast.
        """
        CREATE INDEX messages_phone_queued ON messages(phone) WHERE state = 0;
        CREATE INDEX messages_sent_age ON messages(updated_at) WHERE state = 2;
        """,
        // 5: the value of the campaign's breakdown column (e.g. the ward) per recipient, for reports.
        """
        ALTER TABLE messages ADD COLUMN grp TEXT;
        """,
        // 6: receipts keyed by the gateway's id (batch APIs), receipts that arrive before the send answer names
        // that id, and the time the gateway accepted a message (receipt latency).
        """
        ALTER TABLE messages ADD COLUMN sent_at INTEGER;
        CREATE INDEX messages_gateway ON messages(carrier, gateway_id) WHERE gateway_id IS NOT NULL;
        CREATE TABLE pending_receipts (
            carrier TEXT NOT NULL,
            gateway_id TEXT NOT NULL,
            status INTEGER NOT NULL,
            detail TEXT,
            received_at INTEGER NOT NULL
        );
        CREATE INDEX pending_receipts_key ON pending_receipts(carrier, gateway_id);
        """,
        // 7: an opt-out reply finds a number's queued messages through messages_dedup (campaign, phone), one
        // lookup per campaign. The phone index cost every claim a change in a page of its own (recipients are
        // not in phone order), for a lookup that happens once per reply.
        """
        DROP INDEX IF EXISTS messages_phone_queued;
        """,
        // 8: no index of `sending` messages. It cost every claim an insert and every answer a delete, for a scan
        // made once per start, and only after a stop that left messages in flight (the counts say so).
        """
        DROP INDEX IF EXISTS messages_sending;
        """,
        // 9: a campaign's generation (a random number drawn when it is created), so an upload or a commit meant for
        // a campaign that was discarded cannot reach a new one of the same id; and why a campaign failed.
        """
        ALTER TABLE campaigns ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE campaigns ADD COLUMN failure TEXT;
        """,
        // 10: per campaign, the messages a start found in flight and made `unknown` (campaign show, the API).
        """
        ALTER TABLE campaigns ADD COLUMN recovered_unknown INTEGER NOT NULL DEFAULT 0;
        """,
        // 11: receipts as events. `receipts_seen`: a bit (1 << status) per receipt status the message got as a
        // whole, so only an exact repeat is a duplicate (an ENROUTE after the SMSC's acceptance is logged);
        // the one status `receipt_rank` kept stands in for the history of messages from before. `message_parts`:
        // the gateway's ids of a multi-part message's parts (named in the send answer, or first seen in a
        // receipt) with the statuses each reported, from which the message's state follows (`MessageParts`).
        """
        ALTER TABLE messages ADD COLUMN receipts_seen INTEGER NOT NULL DEFAULT 0;
        UPDATE messages SET receipts_seen = 1 << receipt_rank WHERE receipt_rank > 0;
        CREATE TABLE message_parts (
            message_id INTEGER NOT NULL,
            part_id TEXT NOT NULL,
            carrier TEXT NOT NULL,
            named INTEGER NOT NULL DEFAULT 0,
            seen INTEGER NOT NULL DEFAULT 0,
            status INTEGER NOT NULL DEFAULT 0,
            detail TEXT,
            PRIMARY KEY (message_id, part_id)
        ) WITHOUT ROWID;
        CREATE INDEX message_parts_gateway ON message_parts(carrier, part_id);
        """,
        // 12: when the receipt poller last asked a generic gateway's status API about a `sent` message. Its index
        // (`messages_poll`) exists only while a carrier polls: see Store.preparePolling.
        """
        ALTER TABLE messages ADD COLUMN polled_at INTEGER;
        """,
        // 13: a claim of fresh messages (never tried, never held) is one row naming them, written before any request
        // leaves, instead of one `sending` update per message: their rows are written once, by the outcome. `ids`:
        // the message ids in ascending runs, `first-last` or `id`, comma-separated (ClaimIDs). The row goes when
        // every message it names is settled; a start turns those it still names that never were into `unknown`.
        """
        CREATE TABLE claims (
            id INTEGER PRIMARY KEY,
            campaign_id TEXT NOT NULL,
            carrier TEXT NOT NULL,
            ids TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        """,
        // 14: users with one role each (password: libsodium's Argon2id string, never the password), their API tokens
        // (a BLAKE2b hash of each, never the token; `revoked_at` set instead of deleting, so the audit trail's token
        // ids stay meaningful), the audit trail (append-only: triggers refuse every UPDATE and DELETE, whoever asks),
        // and who submitted and approved each campaign (two-person approval).
        """
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            password TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            user_name TEXT NOT NULL,
            label TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER
        );
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            user TEXT NOT NULL,
            address TEXT NOT NULL,
            action TEXT NOT NULL,
            campaign TEXT,
            detail TEXT NOT NULL
        );
        CREATE INDEX audit_user ON audit(user, id);
        CREATE INDEX audit_campaign ON audit(campaign, id);
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        ALTER TABLE campaigns ADD COLUMN submitted_by TEXT;
        ALTER TABLE campaigns ADD COLUMN approved_by TEXT;
        """,
        // 15: reserved (sessions; another branch).
        "",
        // 16: what `loa preview` prints, counted as the campaign's segments were ingested (``CampaignPreview`` as
        // JSON): rejects by reason, duplicates, per carrier, network and ward, parts, encodings, sample messages.
        // The counters and `counts` move on as the campaign sends (opt-out replies, failover); these stay as loaded.
        """
        ALTER TABLE campaigns ADD COLUMN preview TEXT;
        """,
    ]

    static func migrate(_ db: Connection) throws {
        let v = try db.prepare("PRAGMA user_version")
        var current = 0
        try v.query { current = Int($0.int("user_version")) }
        guard current <= migrations.count else {
            throw SQLiteError(code: 0, message: "database schema version \(current) is newer than this loa (\(migrations.count))", context: "migrating")
        }
        for index in current..<migrations.count {
            try db.exec("BEGIN IMMEDIATE")
            do {
                try db.exec(migrations[index])
                try db.exec("PRAGMA user_version = \(index + 1)")
                try db.exec("COMMIT")
            } catch {
                try? db.exec("ROLLBACK")
                throw error
            }
        }
    }
}
