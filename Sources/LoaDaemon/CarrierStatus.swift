import Foundation
import LoaCarriers
import LoaCore
import LoaStore
import Synchronization

extension Dispatcher {
    /// One carrier's figures for `loa carriers`, `/api/v1/carriers` and `/metrics`.
    public struct CarrierStatus: Sendable, Codable, Equatable {
        public var name: String
        public var configuredRate: Double
        public var maxInFlight: Int
        public var inFlight: Int
        /// Requests started per second over the last 10 seconds.
        public var currentRate: Double
        /// The rate the adaptive limiter allows now (below the configured one after throttling answers).
        public var allowedRate: Double
        public var breaker: CircuitBreaker.State
        /// Most messages per request (batch APIs), 1 otherwise.
        public var maxBatch: Int = 1
        /// Tokens in the carrier's bucket now (negative while long messages are being paid for).
        public var tokens: Int = 0
        /// SMS parts of the messages started since the daemon started.
        public var segmentsSent: Int64 = 0
        /// Requests started since the daemon started.
        public var requests: Int64 = 0
        /// Until when a throttling answer's Retry-After pauses the carrier (ms since the epoch, 0: not paused).
        public var pausedUntil: Int64 = 0
        /// Messages handed to the gateway that it has not passed on yet (no smsc-accepted, buffered or final
        /// receipt): what its queue holds of ours (``HandoffWindow``; 0 without `pace_from_receipts`).
        public var handoffOutstanding: Int = 0
        /// The gateway's pass-on pace learned from its receipts, messages per second (nil: not known yet, or
        /// `pace_from_receipts` is off).
        public var passOnRate: Double?
        /// `pace_from_receipts` is on, and receipts came (false while the gateway is silent: not limiting).
        public var handoffLimiting: Bool = false
        /// Receipts that took one of this node's messages out of the hand-off window since start, and how many of
        /// those another node of the cluster applied and announced (``ClusterReceiptFeed``).
        public var handoffPassedOn: Int64 = 0
        public var handoffPassedOnElsewhere: Int64 = 0
        /// The stated request limit (`requests_per_second`), nil: none.
        public var requestsPerSecond: Double?
        /// The request rate the adaptive limiter allows now, when requests are limited or were throttled.
        public var allowedRequestRate: Double?
        /// Recipients per request a batch fills to (`batch.max` when the message rate allows it).
        public var batchTarget: Int = 1
        /// The fewest recipients per request (`batch.min`), 1: none.
        public var minBatch: Int = 1
        /// Why the breaker opened last (the failing answer), while it is not closed.
        public var breakerCause: String?
        /// The gateway refuses Loa's credentials: its answer, while that is the carrier's state.
        public var authRefused: String?
        /// Paused after identical permanent answers in a row: why (the answer); `loa carriers resume` ends it.
        public var pausedReason: String?
        /// Answers since start by class (accepted, temporary, throttled, permanent, unavailable, ambiguous,
        /// unauthorized), one per message.
        public var answers: [String: Int64] = [:]
        /// What ``configuredRate`` counts: `parts` (SMS parts per second, `rate_in_segments`, the default) or
        /// `messages`. Set by the operator API from the config (the dispatcher's figures do not need it).
        public var rateUnit: String?
        /// In a cluster (issue 21): this node's fraction of the carrier's limits (nil: no cluster).
        public var share: Double?
        /// In a cluster: every live node's figures, this one's included (``Dispatcher/clusterView(_:)``).
        public var nodes: [NodeFigures]?
        /// In a cluster: the live nodes' figures added up.
        public var cluster: ClusterFigures?
    }
}
