import LoaCore

/// Users, their API tokens, the audit trail and two-person approval, as the operator API uses them (issue 20).
/// The store never sees a password or a token: only libsodium's Argon2id string and the token's hash, made by the
/// daemon (LoaDaemon holds the one C import of libsodium).
public protocol AccessStore: AnyObject, Sendable {
    /// Adds a user; ``StoreError/conflict(_:)`` if the name is taken.
    func addUser(name: String, role: Role, passwordHash: String, now: UnixMillis) throws
    /// Removes a user and revokes their tokens; ``StoreError/notFound(_:)`` if there is none.
    func removeUser(name: String, now: UnixMillis) throws
    /// Replaces a user's password hash; ``StoreError/notFound(_:)`` if there is none.
    func setPassword(name: String, passwordHash: String, now: UnixMillis) throws
    /// The stored Argon2id string of a user's password, or nil.
    func passwordHash(of name: String) throws -> String?
    func users() throws -> [UserRecord]

    /// Stores a new token's hash for `user`; returns its id. ``StoreError/notFound(_:)`` for an unknown user.
    func addToken(user: String, label: String, hash: String, now: UnixMillis) throws -> Int64
    /// Revokes a token; returns it (revoked). ``StoreError/notFound(_:)`` when there is no such live token.
    func revokeToken(id: Int64, now: UnixMillis) throws -> TokenRecord
    /// Tokens (live and revoked), without their hashes, of one user or all.
    func tokens(user: String?) throws -> [TokenRecord]
    /// The live token with this hash and its user, or nil (unknown, revoked, or its user removed).
    func principal(tokenHash: String) throws -> (token: Int64, user: String, role: Role)?

    /// Appends one line to the audit trail. The table refuses UPDATE and DELETE (triggers), so no call can change it.
    func appendAudit(_ entry: AuditEntry) throws
    /// A page of the audit trail, oldest first, after the cursor `query.after`.
    func audit(_ query: AuditQuery) throws -> [AuditEntry]

    /// Ends loading: `pending-approval` when `approvalRequired`, else `scheduled`; records the submitter.
    func submitCampaign(_ id: String, generation: Int64?, by user: String, approvalRequired: Bool) throws -> CampaignState
    /// An approver's decision on a `pending-approval` campaign: `scheduled` or `rejected`. Throws ``ApprovalRefused``
    /// when `user` submitted it, ``StoreError/conflict(_:)`` when it is not pending.
    func decide(_ id: String, approve: Bool, by user: String) throws -> CampaignState
    /// Drops a campaign that has sent nothing (`pending-approval`, `rejected`, or `scheduled` before its first start),
    /// with all its rows, so a changed version can be loaded under the same id and approved again. Returns the
    /// state it was in. ``StoreError/conflict(_:)`` in any other state.
    func dropUnsentCampaign(_ id: String) throws -> CampaignState
    /// Up to `limit` rendered texts of a campaign's queued messages, in id order (the test send's slogans).
    func sampleTexts(campaign: String, limit: Int) throws -> [(text: String, carrier: String)]
}

/// A user as listings show them: never the password hash.
public struct UserRecord: Sendable, Codable, Equatable {
    public var name: String
    public var role: Role
    public var createdAt: UnixMillis
    public var updatedAt: UnixMillis
    /// Live (unrevoked) API tokens.
    public var tokens: Int64
}

/// An API token as listings show it: never the token or its hash.
public struct TokenRecord: Sendable, Codable, Equatable {
    public var id: Int64
    public var user: String
    public var label: String
    public var createdAt: UnixMillis
    public var revokedAt: UnixMillis?
}

/// One line of the audit trail: who did what, when, from which address, and what changed.
public struct AuditEntry: Sendable, Equatable {
    public var id: Int64 = 0
    public var at: UnixMillis
    /// The user's name; `admin` for the configured `api_token`; empty for a refused request.
    public var user: String
    /// The request's peer address.
    public var address: String
    /// A stable dotted name: `campaign.submit`, `user.add`, `auth.failed`, …
    public var action: String
    public var campaign: String?
    /// A short JSON object, written by the daemon.
    public var detail: String

    public init(at: UnixMillis, user: String, address: String, action: String, campaign: String? = nil, detail: String = "{}") {
        self.at = at
        self.user = user
        self.address = address
        self.action = action
        self.campaign = campaign
        self.detail = detail
    }
}

/// Which audit lines to read: all filters optional, a page after `after` of at most `limit`.
public struct AuditQuery: Sendable, Equatable {
    public var user: String?
    public var action: String?
    public var campaign: String?
    public var since: UnixMillis?
    public var until: UnixMillis?
    public var after: Int64 = 0
    public var limit = 1000
    public init() {}
}

/// An approval the two-person rule refuses: the approver submitted the campaign.
public struct ApprovalRefused: Error, CustomStringConvertible, Sendable {
    public var description: String
}
