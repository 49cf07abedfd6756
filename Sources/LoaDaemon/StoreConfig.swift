import Foundation
import LoaStore

/// Which store the daemon opens: SQLite in the data directory (the default), or PostgreSQL (issue 21):
///
/// ```json5
/// store: {kind: "postgresql", url: "postgresql://loa@127.0.0.1:5432/loa", password: {credential: "pg-password"},
///         schema: "public", node: "local"}
/// ```
/// The URL names the server, database and user but never the password: that comes from a secret (`env`, `file` or
/// `credential`, as every secret of the config), so the URL can be logged and shown. `node` names this daemon in the
/// database (one daemon per node at a time); `schema` the tables' schema; `lease_seconds` (default 10) the node's
/// lease: a node sends only while it holds it, and a survivor settles a dead node's claims a fifth of it later.
/// `cluster_log` (default true) also writes every delivery-log line into the database's log of the whole cluster
/// (`loa tail --cluster`, `GET /api/v1/log/stream?scope=cluster`), kept `cluster_log_days` (default 7) days.
public enum StoreChoice: Sendable {
    case sqlite
    case postgresql(PostgresSettings)
}

/// The `store` entry of the config file.
struct StoreEntry: Decodable {
    var kind: String?
    var url: String?
    var password: SecretRef?
    var schema: String?
    var node: String?
    var leaseSeconds: Double?
    var clusterLog: Bool?
    var clusterLogDays: Int?
    enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, url, password, schema, node
        case leaseSeconds = "lease_seconds"
        case clusterLog = "cluster_log"
        case clusterLogDays = "cluster_log_days"
    }
}

extension ConfigLoader {
    /// Reads the `store` entry: problems go to `add` with the field's dotted name; `resolve` reads the password secret
    /// (skipped by the command-line client, which never opens the store).
    static func storeChoice(_ entry: StoreEntry?, clientOnly: Bool, add: (String, String) -> Void,
                            resolve: (SecretRef?, String) -> String) -> StoreChoice {
        guard let entry else { return .sqlite }
        switch entry.kind ?? "sqlite" {
        case "sqlite":
            for (key, value) in [("url", entry.url), ("schema", entry.schema), ("node", entry.node)] where value != nil {
                add("store.\(key)", "only for kind postgresql")
            }
            if entry.leaseSeconds != nil { add("store.lease_seconds", "only for kind postgresql") }
            if entry.clusterLog != nil { add("store.cluster_log", "only for kind postgresql (a daemon on SQLite is a cluster of one: its log is delivery.log)") }
            if entry.clusterLogDays != nil { add("store.cluster_log_days", "only for kind postgresql") }
            if entry.password != nil { add("store.password", "only for kind postgresql") }
            return .sqlite
        case "postgresql":
            guard let url = entry.url, !url.isEmpty else { add("store", "url is required for kind postgresql: postgresql://user@host:port/database"); return .sqlite }
            if !(url.hasPrefix("postgresql://") || url.hasPrefix("postgres://")) {
                add("store.url", "must be a postgresql://user@host:port/database URL")
            } else if PostgresSettings.redact(url) != url || url.contains("password=") {
                add("store.url", "must not hold the password: give it as store.password {\"env\": …}, {\"file\": …} or {\"credential\": …}")
            }
            let schema = entry.schema ?? "public"
            let node = entry.node ?? "local"
            if !CampaignSpecNames.isName(schema) { add("store.schema", "must be letters, digits or '_', starting with a letter or '_' (at most 63)") }
            if !CampaignSpecNames.isName(node) { add("store.node", "must be letters, digits or '_', starting with a letter or '_' (at most 63)") }
            let lease = entry.leaseSeconds ?? 10
            if !(lease >= 1 && lease <= 300) { add("store.lease_seconds", "must be between 1 and 300 seconds (a node stops sending when its lease ends)") }
            let days = entry.clusterLogDays ?? 7
            if !(1...3650).contains(days) { add("store.cluster_log_days", "must be between 1 and 3650 days") }
            // No password: the server trusts the connection (peer or trust authentication, a client certificate).
            let password = entry.password.map { clientOnly ? "" : resolve($0, "store.password") }
            return .postgresql(PostgresSettings(url: url, password: password, schema: schema, node: node,
                                                leaseMillis: lease.isFinite ? Int64((min(max(lease, 1), 300) * 1000).rounded()) : 10_000,
                                                clusterLog: entry.clusterLog ?? true, clusterLogDays: min(max(days, 1), 3650)))
        case let other:
            add("store.kind", "unknown store kind '\(other)' (known: sqlite, postgresql)")
            return .sqlite
        }
    }
}

/// Names the store takes from the config (a schema, a node): SQL identifiers that need no quoting.
enum CampaignSpecNames {
    static func isName(_ s: String) -> Bool {
        guard let first = s.utf8.first, s.utf8.count <= 63 else { return false }
        func letter(_ c: UInt8) -> Bool { (65...90).contains(c) || (97...122).contains(c) || c == 95 }
        return letter(first) && s.utf8.allSatisfy { letter($0) || (48...57).contains($0) }
    }
}
