import LoaCore

/// The PostgreSQL schema, in versioned migrations applied in order, each in its own transaction; `loa_schema` records
/// the last one applied. Never edit a shipped migration: add the next one.
///
/// The tables are SQLite's (Schema.swift) in PostgreSQL terms, with what several daemons on one database will need
/// (issue 21) already in place: a claim names the node that made it (`messages.node`), so a node's recovery (and,
/// later, a survivor's once the node's lease ends) turns only that node's `sending` messages into `unknown`;
/// per-state counters are kept per node (`counts.node`), so nodes never write the same counter row; each node keeps
/// the position of its own delivery log (`log_positions`); `nodes` names the daemon holding each node, where a lease
/// will go. Claims take rows with `FOR UPDATE SKIP LOCKED`, so nodes claiming at once never wait for each other
/// nor take the same message.
enum PGSchema {
    static let queued = MessageState.queued.rawValue
    static let sending = MessageState.sending.rawValue
    static let sent = MessageState.sent.rawValue
    static let rejected = MessageState.rejected.rawValue
    static let suppressed = MessageState.suppressed.rawValue

    static let migrations: [String] = [
        // 1: everything SQLite's migrations 1-14 built, in one step.
        """
        CREATE TABLE campaigns (
            id text PRIMARY KEY,
            state text NOT NULL,
            spec text NOT NULL,
            sender text NOT NULL,
            start_at bigint NOT NULL,
            deadline_at bigint NOT NULL,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL,
            rows bigint NOT NULL DEFAULT 0,
            accepted bigint NOT NULL DEFAULT 0,
            rejected bigint NOT NULL DEFAULT 0,
            duplicates bigint NOT NULL DEFAULT 0,
            segments_total bigint NOT NULL DEFAULT 0,
            generation bigint NOT NULL DEFAULT 0,
            failure text,
            recovered_unknown bigint NOT NULL DEFAULT 0,
            submitted_by text,
            approved_by text
        );
        CREATE TABLE messages (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            campaign_id text NOT NULL,
            phone text,
            raw_phone text,
            carrier text NOT NULL DEFAULT '',
            source text,
            line bigint,
            text text,
            encoding integer NOT NULL DEFAULT 0,
            segments integer NOT NULL DEFAULT 1,
            state integer NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            not_before bigint NOT NULL DEFAULT 0,
            gateway_id text,
            receipt_rank integer NOT NULL DEFAULT 0,
            receipts_seen bigint NOT NULL DEFAULT 0,
            detail text,
            reason text,
            grp text,
            sent_at bigint,
            polled_at bigint,
            node text,
            updated_at bigint NOT NULL
        );
        CREATE UNIQUE INDEX messages_dedup ON messages(campaign_id, phone);
        CREATE INDEX messages_queue ON messages(campaign_id, carrier, id) WHERE state = \(queued);
        CREATE INDEX messages_sending ON messages(node, id) WHERE state = \(sending);
        CREATE INDEX messages_sent_age ON messages(updated_at) WHERE state = \(sent);
        CREATE INDEX messages_gateway ON messages(carrier, gateway_id) WHERE gateway_id IS NOT NULL;
        CREATE INDEX messages_rejects ON messages(campaign_id, id) WHERE state IN (\(rejected), \(suppressed));
        CREATE TABLE counts (
            campaign_id text NOT NULL,
            carrier text NOT NULL,
            state integer NOT NULL,
            node text NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (campaign_id, carrier, state, node)
        );
        CREATE TABLE suppressions (phone text PRIMARY KEY, source text NOT NULL, added_at bigint NOT NULL);
        CREATE TABLE campaign_exclusions (campaign_id text NOT NULL, phone text NOT NULL, PRIMARY KEY (campaign_id, phone));
        CREATE TABLE skipped (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            campaign_id text NOT NULL,
            source text,
            line bigint,
            raw text,
            reason text NOT NULL,
            detail text
        );
        CREATE INDEX skipped_campaign ON skipped(campaign_id, id);
        CREATE TABLE reason_counts (campaign_id text NOT NULL, reason text NOT NULL, n bigint NOT NULL, PRIMARY KEY (campaign_id, reason));
        CREATE TABLE contacts (phone text NOT NULL, sent_at bigint NOT NULL, message_id bigint NOT NULL);
        CREATE INDEX contacts_phone ON contacts(phone, sent_at);
        CREATE INDEX contacts_time ON contacts(sent_at);
        CREATE TABLE pending_receipts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            carrier text NOT NULL,
            gateway_id text NOT NULL,
            status integer NOT NULL,
            detail text,
            received_at bigint NOT NULL
        );
        CREATE INDEX pending_receipts_key ON pending_receipts(carrier, gateway_id);
        CREATE TABLE message_parts (
            message_id bigint NOT NULL,
            part_id text NOT NULL,
            carrier text NOT NULL,
            named integer NOT NULL DEFAULT 0,
            seen bigint NOT NULL DEFAULT 0,
            status integer NOT NULL DEFAULT 0,
            detail text,
            PRIMARY KEY (message_id, part_id)
        );
        CREATE INDEX message_parts_gateway ON message_parts(carrier, part_id);
        CREATE TABLE log_positions (node text PRIMARY KEY, committed_seq bigint NOT NULL);
        CREATE TABLE nodes (node text PRIMARY KEY, pid bigint NOT NULL, host text NOT NULL, started_at bigint NOT NULL);
        CREATE TABLE users (
            name text PRIMARY KEY,
            role text NOT NULL,
            password text NOT NULL,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL
        );
        CREATE TABLE api_tokens (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_name text NOT NULL,
            label text NOT NULL,
            hash text NOT NULL UNIQUE,
            created_at bigint NOT NULL,
            revoked_at bigint
        );
        CREATE TABLE audit (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at bigint NOT NULL,
            user_name text NOT NULL,
            address text NOT NULL,
            action text NOT NULL,
            campaign text,
            detail text NOT NULL
        );
        CREATE INDEX audit_user ON audit(user_name, id);
        CREATE INDEX audit_campaign ON audit(campaign, id);
        CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
        CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only();
        CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
        """,
        // 2: what `loa preview` prints, counted as the campaign's segments were ingested (``CampaignPreview`` as JSON;
        // SQLite's migration 16).
        """
        ALTER TABLE campaigns ADD COLUMN preview text;
        """,
        // 3: leases (``PGCluster``). Times are the database's clock in milliseconds (`loa_now_ms()`), one clock for
        // every node. `epoch` is bumped each time the node takes its lease anew; `recovered_epoch` is the last epoch
        // whose unsettled claims a survivor (or the node itself) turned into `unknown`; `status` is what the node
        // publishes about itself (JSON) for the cluster's view.
        """
        CREATE FUNCTION loa_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
        ALTER TABLE nodes ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
        ALTER TABLE nodes ADD COLUMN lease_until bigint NOT NULL DEFAULT 0;
        ALTER TABLE nodes ADD COLUMN renewed_at bigint NOT NULL DEFAULT 0;
        ALTER TABLE nodes ADD COLUMN joined_at bigint NOT NULL DEFAULT 0;
        ALTER TABLE nodes ADD COLUMN recovered_epoch bigint NOT NULL DEFAULT 0;
        ALTER TABLE nodes ADD COLUMN status text;
        """,
        // 4: the cluster's delivery log (``PGClusterLog``): every node's lines, each once, numbered across the cluster
        // by `id` in the order their transactions drew it (just before COMMIT); `node` and `seq` say whose line
        // and where in that node's own file; `at` is when it was written (the node's clock, for the retention).
        // No index but the key: a reader pages by id, the retention deletes from the low end.
        """
        CREATE TABLE cluster_events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            node text NOT NULL,
            seq bigint NOT NULL,
            campaign text NOT NULL,
            at bigint NOT NULL,
            line text NOT NULL
        );
        """,
    ]

    /// Applies the migrations not yet applied. Several daemons may start at once: a transaction-scoped advisory lock
    /// lets one migrate while the others wait, then find nothing left to do.
    static func migrate(_ db: PGConnection) throws {
        // Locked as each step below is: nodes starting at once on a new schema would race to create the table.
        try db.exec("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/loa_schema')); CREATE TABLE IF NOT EXISTS loa_schema (version integer NOT NULL)")
        for index in 0..<migrations.count {
            try db.exec("BEGIN")
            do {
                try db.exec("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/loa_schema'))")
                var current = 0
                try db.prepare("SELECT COALESCE(MAX(version), 0) AS v FROM loa_schema").query { current = Int($0.int("v")) }
                guard current <= migrations.count else {
                    throw PostgresError(sqlState: "", message: "database schema version \(current) is newer than this loa (\(migrations.count))",
                                        context: "migrating", connectionLost: false)
                }
                if current == index {
                    try db.exec(migrations[index])
                    try db.exec("INSERT INTO loa_schema(version) VALUES(\(index + 1))")
                }
                try db.exec("COMMIT")
            } catch {
                try? db.exec("ROLLBACK")
                throw error
            }
        }
    }
}
