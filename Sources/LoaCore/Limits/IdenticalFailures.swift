/// Many identical permanent answers in a row on one carrier: a routing mistake (Jasmin's 412 "No route found"),
/// a revoked sender name, not a campaign's bad numbers. After `threshold` of them the carrier pauses with an
/// alarm instead of failing a whole campaign at full speed; the operator resumes it.
///
/// Pure. Answers are counted per message, in the order they come: an acceptance ends a run, a permanent answer
/// with another text starts a new one, temporary answers and throttling leave it as it is (they say nothing
/// about the routing). The texts are compared whole: adapters already mask phone numbers and message text.
///
/// | answers (threshold 3) | run | paused |
/// |---|---|---|
/// | A A | 2 | no |
/// | A A B | 1 (B) | no |
/// | A A accepted A | 1 | no |
/// | A temporary A A | 3 | yes: "A" |
public struct IdenticalFailures: Sendable, Equatable {
    /// Permanent answers in a row that pause the carrier; 0 never pauses.
    public let threshold: Int
    public private(set) var run = 0
    public private(set) var answer: String?
    /// Why the carrier is paused (the answer and the count), nil while it is not.
    public private(set) var pausedReason: String?

    public init(threshold: Int) { self.threshold = max(0, threshold) }

    public var isPaused: Bool { pausedReason != nil }

    /// Counts one permanent answer; true when this one pauses the carrier.
    public mutating func permanent(_ detail: String) -> Bool {
        if detail == answer { run += 1 } else {
            answer = detail
            run = 1
        }
        guard threshold > 0, run >= threshold, pausedReason == nil else { return false }
        pausedReason = "\(run) identical permanent answers in a row: \(detail)"
        return true
    }

    /// An accepted message: the gateway routes again, the run ends.
    public mutating func accepted() {
        run = 0
        answer = nil
    }

    /// The operator resumed the carrier: the count starts over.
    public mutating func resume() {
        run = 0
        answer = nil
        pausedReason = nil
    }
}
