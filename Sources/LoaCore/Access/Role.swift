/// A user's role: what they may do through the operator API and the CLI (issue 20). One role per user.
///
/// The roles are not a ladder: a planner prepares campaigns but may not pause one, an operator pauses but may not
/// plan. ``includes(_:)`` is the one place the matrix is written; an endpoint names the least role it needs
/// (`Access.role`) and a caller passes when their role includes it:
///
/// | needs →      | viewer | operator | planner | approver | admin |
/// |--------------|--------|----------|---------|----------|-------|
/// | viewer       | yes    |          |         |          |       |
/// | operator     | yes    | yes      |         |          |       |
/// | planner      | yes    |          | yes     |          |       |
/// | approver     | yes    | yes      |         | yes      |       |
/// | admin        | yes    | yes      | yes     | yes      | yes   |
///
/// An approver may also do what an operator does (pause, resume): who may stop a blast for good (cancel) may hold it.
public enum Role: String, Sendable, Codable, CaseIterable {
    /// Reads campaigns, reports, carriers.
    case viewer
    /// Pauses and resumes campaigns, resumes carriers, keeps the opt-out list; watches carriers and the log.
    case `operator`
    /// Creates campaigns, uploads segments, submits them for approval.
    case planner
    /// Approves or rejects submitted campaigns (never their own), test-sends, cancels, reads the audit trail.
    case approver
    /// Manages users and tokens; may do everything. The configured `api_token` acts as an admin.
    case admin

    /// Whether a caller with this role may call an endpoint that needs `needed`.
    public func includes(_ needed: Role) -> Bool {
        switch (self, needed) {
        case (.admin, _), (_, .viewer): true
        case (.approver, .operator): true
        default: self == needed
        }
    }
}
