/// What Loa knows of one carrier that changes while it sends: its limits' tokens, its health and what its
/// gateway still holds of ours. One struct per carrier instead of parallel dictionaries keyed by its name, so
/// no lookup can find one part and miss another.
///
/// Pure. The dispatcher keeps one per carrier under its lock: finished requests and receipts update it from
/// other threads, and ``DispatchPlan`` reads and takes its tokens in the dispatcher's round.
public struct CarrierState: Sendable, Equatable {
    /// Message rate, request rate, requests in flight and batch fill (``CarrierPacer``).
    public var pacer: CarrierPacer
    /// Consecutive failed requests open it; it lets one probe through after its cooldown.
    public var breaker: CircuitBreaker
    /// Identical permanent answers in a row pause the carrier until the operator resumes it.
    public var identical: IdenticalFailures
    /// With `pace_from_receipts`: what the gateway holds of ours and its learned pass-on pace (nil: off).
    public var handoff: HandoffWindow?
    /// The last round found no room in the hand-off window: a pass-on receipt should wake the dispatcher.
    public var handoffHeld = false

    public init(pacer: CarrierPacer, breaker: CircuitBreaker = CircuitBreaker(), identical: IdenticalFailures,
                handoff: HandoffWindow? = nil) {
        self.pacer = pacer
        self.breaker = breaker
        self.identical = identical
        self.handoff = handoff
    }
}
