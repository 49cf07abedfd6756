/// How many records of refused requests (`auth.failed`, `auth.forbidden`) the audit trail takes, and how many it
/// let go. The trail is append-only (nothing in Loa can delete a row), and a refusal costs its sender nothing: without
/// a budget, a client sending wrong tokens in a loop would fill the disk with rows nobody may ever remove.
///
/// Pure, on the caller's clock: a token bucket (`perSecond`, up to `burst` at once). A record that finds no token is
/// counted instead of written; the next record written carries that count (``admit(now:)`` returns it), so the
/// trail still says how many refusals it did not keep.
///
/// | at (s) | burst 2, 1/s | admitted | returned |
/// |---|---|---|---|
/// | 0 | 2 tokens | yes | 0 |
/// | 0 | 1 | yes | 0 |
/// | 0.1 | 0 | no (1 not kept) | nil |
/// | 0.2 | 0 | no (2 not kept) | nil |
/// | 1.2 | 1 | yes | 2 |
public struct RecordBudget: Sendable {
    private var bucket: TokenBucket
    /// Records let go since the last one written.
    public private(set) var notKept = 0

    public init(perSecond: Double, burst: Int, now: UnixMillis) {
        bucket = TokenBucket(rate: perSecond, burst: burst, now: now)
    }

    /// Nil: do not write this record (it is counted). Else write it, noting the returned count of records not kept
    /// before it (0 when none).
    public mutating func admit(now: UnixMillis) -> Int? {
        guard bucket.take(upTo: 1, now: now) == 1 else {
            notKept += 1
            return nil
        }
        defer { notKept = 0 }
        return notKept
    }
}
