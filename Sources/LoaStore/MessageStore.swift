import LoaCore
import Synchronization

/// Errors of the store module.
public enum StoreError: Error, CustomStringConvertible, Sendable {
    case io(String)
    case notFound(String)
    case conflict(String)
    case invalid(String)
    case closed

    public var description: String {
        switch self {
        case .io(let s): s
        case .notFound(let s): "not found: \(s)"
        case .conflict(let s): "conflict: \(s)"
        case .invalid(let s): "invalid: \(s)"
        case .closed: "the store is closed"
        }
    }
}

/// The store as the daemon, the command line and the benchmarks use it, in Loa's terms: campaigns are loaded,
/// committed and moved through their lifecycle; messages are claimed for a carrier before their request leaves
/// and get their outcome after; receipts settle them; the operator reads campaigns, reports and rejects.
///
/// Every implementation MUST keep these guarantees, which the behavioural tests in `Tests/LoaStoreTests` check
/// through this protocol (a new implementation adds itself to `makeStore` in `StoreFactory.swift` there and runs the same suite):
/// - a claimed message is durable as `sending` before ``claim(campaign:carrier:limit:now:policy:deadline:until:)``
///   returns, and a message found `sending` when the store opens becomes `unknown`, never queued again
///   (nothing is sent twice across a crash);
/// - every change of a message's state moves it as ``MessageLifecycle`` says, counted in its campaign's per-state
///   counters and logged as one line of the delivery log, committed together with the change;
/// - calls block their caller until the change is durable: make them from a dedicated thread, never from Swift's
///   shared executor.
///
/// ``Store`` (SQLite, one serial writer) is the first implementation.
public protocol MessageStore: AnyObject, Sendable, AccessStore {
    /// What opening this store recovered: messages made `unknown`, delivery-log lines repaired, the time taken.
    var recovery: RecoveryReport { get }
    /// What the writer is doing, from memory: for `/readyz`.
    var writerHealth: WriterHealth { get }
    /// Final receipts per carrier (time from the gateway's acceptance, final state) and receipts overdue, for `/metrics`.
    var receiptStats: Mutex<ReceiptStats> { get }
    /// Rows the store's committed transactions inserted, updated or deleted since it opened: its durable writes.
    var rowsWritten: Int64 { get }
    /// Transactions committed since it opened (one per group commit).
    var transactionsCommitted: Int64 { get }
    /// Finishes the work already queued and lets go of the data; later calls throw ``StoreError/closed``.
    func close()

    // MARK: Loading a campaign

    /// Creates a `loading` campaign; returns its generation. ``StoreError/conflict(_:)`` if the id exists.
    @discardableResult
    func createCampaign(_ submission: CampaignSubmission, startAt: UnixMillis, deadlineAt: UnixMillis) throws -> Int64
    /// Stores segment rows of a `loading` campaign (of that `generation`, when given); duplicates are counted, not stored.
    func ingest(campaign: String, generation: Int64?, rows: [IngestRow]) throws -> IngestCounts
    /// Adds numbers to a `loading` campaign's exclusion list; returns how many were new.
    func addExclusions(campaign: String, generation: Int64?, phones: [String]) throws -> Int

    // MARK: A campaign's lifecycle

    /// Ends loading: the campaign becomes `scheduled`.
    func commitCampaign(_ id: String, generation: Int64?) throws
    /// Applies an operator's pause, resume or cancel; returns the new state (``StoreError/conflict(_:)`` when not allowed).
    func apply(_ event: CampaignEvent, to id: String, now: UnixMillis) throws -> CampaignState
    /// Removes a campaign that is still `loading`, with all its rows.
    func discardLoadingCampaign(_ id: String, generation: Int64?) throws
    /// Starts due campaigns, ends cancelled, failed and overdue ones' queued messages (at most `limit` per call),
    /// completes finished ones. True while more of that work remains.
    func advanceCampaigns(now: UnixMillis, limit: Int) throws -> Bool
    /// Active campaigns with the carriers that still have queued messages.
    func activeWork() throws -> [ActiveCampaign]
    /// The same, and the campaigns whose stored spec cannot be sent from (moved to `failed`), with the reason.
    func activeWorkAndFailures() throws -> (active: [ActiveCampaign], failed: [(id: String, reason: String)])

    // MARK: Opt-outs

    /// Adds numbers to the global opt-out list; returns how many were new.
    func addOptOuts(_ phones: [String], source: String) throws -> Int
    /// An opt-out reply: the number joins the list and its queued messages are suppressed at once; returns how many.
    func optOutNow(_ phone: String, source: String) throws -> Int
    /// Removes numbers from the global opt-out list; returns how many were there.
    func removeOptOuts(_ phones: [String]) throws -> Int
    /// The whole opt-out list, in number order.
    func optOuts() throws -> [String]
    func optOutCount() throws -> Int64

    // MARK: Sending

    /// Claims up to `limit` of a campaign's queued messages due for `carrier`: durable as `sending` on return.
    func claim(campaign: String, carrier: String, limit: Int, now: UnixMillis, policy: ContactPolicy?,
               deadline: UnixMillis, until: UnixMillis) throws -> [OutgoingMessage]
    /// Failover: moves up to `limit` queued messages from carrier `from` to `to`; returns how many moved.
    func reroute(campaign: String, from: String, to: String, limit: Int, reason: String) throws -> Int
    /// Records send outcomes, durable on return.
    func record(_ outcomes: [SendOutcome]) throws
    /// Records send outcomes without waiting; `failed` is called if they could not be recorded.
    func recordSoon(_ outcomes: [SendOutcome], failed: @escaping @Sendable (Error) -> Void)
    /// For a carrier with a minimum batch: how many could be claimed now (up to `limit`), and whether more may come.
    func batchReadiness(campaign: String, carrier: String, now: UnixMillis, limit: Int) throws -> (ready: Int, moreMayCome: Bool)
    /// Messages of `carriers` handed to their gateway and not known to be passed on, with when they were handed over.
    func handedOverNotPassedOn(carriers: [String]) throws -> [(id: Int64, carrier: String, at: UnixMillis)]
    /// The same, streamed: only those handed over at or after `since` (older ones would be taken as lost at
    /// once), passed to `body` in batches while the caller waits. At 10M recipients with their receipts lost the
    /// array form is 10M tuples of a carrier string each (hundreds of MB); this keeps a batch at a time. A default
    /// implementation filters the array form.
    func handedOverNotPassedOn(carriers: [String], since: UnixMillis,
                               batches body: @escaping @Sendable ([(id: Int64, carrier: String, at: UnixMillis)]) -> Void) throws
    /// After a claim failed: the messages of claims whose COMMIT the server may have taken with its answer lost,
    /// still `sending` under this node and not named by `holding()` (the dispatcher's: in flight, answered and not
    /// yet recorded, refused by the store), go back to the queue, their attempt given back, fenced by this node's
    /// lease at `epoch`; none reached an adapter. `holding` is read once every recording queued before the call has ended.
    /// Returns how many, or nil when the lease at `epoch` is not held (its claims are settled `unknown` then).
    /// SQLite has none: its COMMIT is local, and when it fails the transaction is rolled back with the claim
    /// records (``WriteContext``); its default returns 0.
    func releaseUnsentClaims(epoch: Int64?, holding: @escaping @Sendable () -> Set<Int64>) throws -> Int?

    // MARK: Receipts

    /// Applies receipts together; returns what each did.
    func apply(_ receipts: [ReceiptUpdate]) throws -> [ReceiptResult]
    /// Turns `sent` messages whose final receipt is overdue into `unknown` (at most `limit`); returns how many.
    func expireReceipts(olderThan cutoff: UnixMillis, limit: Int) throws -> Int
    /// Readies (or stops readying) the store for receipts by polling.
    func preparePolling(enabled: Bool) throws
    /// A carrier's `sent` messages with a gateway id due a poll, the longest-unpolled first.
    func pollCandidates(carrier: String, sentFrom: UnixMillis, sentTo: UnixMillis, polledBefore: UnixMillis,
                        limit: Int) throws -> [(id: Int64, gatewayID: String)]
    /// Notes that the poller asked about these messages now.
    func markPolled(_ ids: [Int64]) throws
    /// Logs an aggregate callback and returns the request's messages still `sent` (at most `limit`).
    func recordRequestReceipt(carrier: String, requestID: String, counts: [(name: String, value: String)],
                              limit: Int) throws -> [(id: Int64, gatewayID: String)]

    // MARK: Reads for the operator and reports

    /// A campaign's segment rows that will not be sent, in file order, after the cursor `after`.
    func rejects(campaign: String, after: Int64, batch: Int) throws -> [(cursor: Int64, row: RejectRow)]
    /// The numbers of a campaign's messages in `states`, in id order after `after`.
    func recipients(of campaign: String, states: [MessageState], after: Int64, limit: Int) throws -> [(id: Int64, phone: String)]
    /// One page of a campaign's recipients for the report.
    func reportRows(campaign: String, after: Int64, limit: Int) throws -> [ReportRow]
    /// The aggregates a report draws.
    func reportData(campaign: String, buckets: Int) throws -> ReportData
    func campaigns() throws -> [CampaignRecord]
    func campaign(_ id: String) throws -> CampaignRecord?
    /// What `loa preview` shows of the campaign's segments, counted as they were ingested; nil when the campaign
    /// has none (no row ingested yet, or loaded before the store kept it). ``StoreError/notFound(_:)`` for no campaign.
    func preview(campaign: String) throws -> CampaignPreview?
    /// The states of every message of a campaign, in id order.
    func messageStates(campaign: String) throws -> [(phone: String?, state: MessageState, attempts: Int)]
}

/// The usual arguments (a protocol's requirements take no defaults).
extension MessageStore {
    public func handedOverNotPassedOn(carriers: [String], since: UnixMillis,
                                      batches body: @escaping @Sendable ([(id: Int64, carrier: String, at: UnixMillis)]) -> Void) throws {
        body(try handedOverNotPassedOn(carriers: carriers).filter { $0.at >= since })
    }
    public func releaseUnsentClaims(epoch: Int64?, holding: @escaping @Sendable () -> Set<Int64>) throws -> Int? { 0 }
    public func ingest(campaign: String, rows: [IngestRow]) throws -> IngestCounts {
        try ingest(campaign: campaign, generation: nil, rows: rows)
    }
    public func addExclusions(campaign: String, phones: [String]) throws -> Int {
        try addExclusions(campaign: campaign, generation: nil, phones: phones)
    }
    public func commitCampaign(_ id: String) throws { try commitCampaign(id, generation: nil) }
    public func discardLoadingCampaign(_ id: String) throws { try discardLoadingCampaign(id, generation: nil) }
    public func advanceCampaigns(now: UnixMillis) throws -> Bool { try advanceCampaigns(now: now, limit: 20_000) }
    public func claim(campaign: String, carrier: String, limit: Int, now: UnixMillis, policy: ContactPolicy? = nil,
                      deadline: UnixMillis = .max) throws -> [OutgoingMessage] {
        try claim(campaign: campaign, carrier: carrier, limit: limit, now: now, policy: policy, deadline: deadline, until: .max)
    }
    public func expireReceipts(olderThan cutoff: UnixMillis) throws -> Int { try expireReceipts(olderThan: cutoff, limit: 20_000) }
    public func recordRequestReceipt(carrier: String, requestID: String, counts: [(name: String, value: String)]) throws -> [(id: Int64, gatewayID: String)] {
        try recordRequestReceipt(carrier: carrier, requestID: requestID, counts: counts, limit: 10_000)
    }
    public func rejects(campaign: String, after: Int64 = 0) throws -> [(cursor: Int64, row: RejectRow)] {
        try rejects(campaign: campaign, after: after, batch: 10_000)
    }
    public func reportData(campaign: String) throws -> ReportData { try reportData(campaign: campaign, buckets: 48) }
}
