import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import LoaStore
import Synchronization

/// Health, readiness and metrics: what probes and Prometheus read.
extension DaemonService {
    /// The probes are open (``Access/open``): they say only that the daemon is up and its store takes work.
    /// Metrics name campaigns and carriers, so they need the operator token.
    static let healthEndpoints: [Endpoint] = [
        Endpoint("GET", "/healthz", access: .open) { _, _ in .value(["status": "ok"]) },
        Endpoint("GET", "/readyz", access: .open) { s, _ in try s.readyz() },
        Endpoint("GET", "/metrics") { s, _ in .response(s.metrics()) },
    ]

    /// Ready when the store takes work, read from what its writer records (no job: a probe must cost
    /// the writer nothing, see WriterHealth). The busy time is measured on the monotonic clock the writer
    /// stamps its jobs with, not the wall clock.
    func readyz() throws -> Reply {
        let health = store.writerHealth
        if let problem = health.problem() {
            // A failed transaction's text can carry SQLite's message and SQL: logged, and the (open) probe told
            // only that it failed.
            logger.warning("not ready", ["problem": problem])
            let told = health.lastFailure.map { problem.replacingOccurrences(of: ": " + $0, with: "; the daemon's log has the detail") } ?? problem
            throw APIError(503, "not-ready", told)
        }
        let busy = health.busySince.map { "busy for \(Int((ContinuousClock.now - $0) / .milliseconds(1))) ms" }
        return .value(["status": "ready", "store_writer": busy ?? "idle"])
    }

    // MARK: - Metrics

    /// Prometheus text format: messages by campaign, carrier and state; carriers' rates and in-flight requests.
    func metrics() -> ServerResponse {
        var out = "# HELP loa_messages Messages by campaign, carrier and state.\n# TYPE loa_messages gauge\n"
        var segments = "# HELP loa_campaign_sms_parts SMS parts of a campaign's accepted messages.\n# TYPE loa_campaign_sms_parts gauge\n"
        var recovered = "# HELP loa_campaign_recovered_unknown Messages of a campaign found in flight at a start and made unknown, over all starts.\n"
            + "# TYPE loa_campaign_recovered_unknown gauge\n"
        var queue: [String: Int64] = [:]
        do {
            for c in try store.campaigns() {
                for (carrier, states) in c.carriers.sorted(by: { $0.key < $1.key }) {
                    for (state, n) in states.sorted(by: { $0.key < $1.key }) {
                        out += "loa_messages{campaign=\"\(c.id)\",carrier=\"\(carrier)\",state=\"\(state)\"} \(n)\n"
                        if state == "queued" { queue[carrier, default: 0] += n }
                    }
                }
                segments += "loa_campaign_sms_parts{campaign=\"\(c.id)\"} \(c.segmentsTotal)\n"
                if c.recoveredUnknown > 0 { recovered += "loa_campaign_recovered_unknown{campaign=\"\(c.id)\"} \(c.recoveredUnknown)\n" }
            }
        } catch {
            // The store's error can carry SQLite's message and SQL: logged, never sent.
            logger.error("metrics: the store did not answer", ["error": "\(error)"])
            return self.error(503, "store-unavailable", "the store did not answer; the daemon's log has the detail")
        }
        out += segments + recovered
        let r = store.recovery
        out += "# HELP loa_recovery_unknown_messages Messages in flight at the last stop, made unknown (never resent) at this start.\n"
            + "# TYPE loa_recovery_unknown_messages gauge\nloa_recovery_unknown_messages \(r.unknownMessages)\n"
            + "# HELP loa_recovery_log_lines_repaired Delivery-log lines cut (torn, uncommitted) or written (outbox) at this start.\n"
            + "# TYPE loa_recovery_log_lines_repaired gauge\nloa_recovery_log_lines_repaired \(r.logLinesRepaired)\n"
            + "# HELP loa_recovery_seconds Time this start's recovery took (log repair, in-flight scan).\n"
            + "# TYPE loa_recovery_seconds gauge\nloa_recovery_seconds \(r.seconds)\n"
            + "# HELP loa_store_rows_written_total Rows the store's committed transactions inserted, updated or deleted since start.\n"
            + "# TYPE loa_store_rows_written_total counter\nloa_store_rows_written_total \(store.rowsWritten)\n"
            + "# HELP loa_store_transactions_total Transactions the store committed since start (group commits).\n"
            + "# TYPE loa_store_transactions_total counter\nloa_store_transactions_total \(store.transactionsCommitted)\n"
        let status = dispatcher.status()
        /// One gauge or counter with a value per carrier.
        func perCarrier(_ name: String, _ type: String, _ help: String, _ value: (Dispatcher.CarrierStatus) -> String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for c in status { out += "\(name){carrier=\"\(c.name)\"} \(value(c))\n" }
        }
        perCarrier("loa_carrier_in_flight", "gauge", "Requests in flight per carrier.") { "\($0.inFlight)" }
        perCarrier("loa_carrier_rate", "gauge", "Requests started per second over the last 10 s.") { "\($0.currentRate)" }
        perCarrier("loa_carrier_rate_limit", "gauge", "Configured rate per second (in the carrier's rate_unit).") { "\($0.configuredRate)" }
        perCarrier("loa_carrier_allowed_rate", "gauge", "The adaptive limiter's rate now (lower after throttling).") { "\($0.allowedRate)" }
        out += "# HELP loa_carrier_breaker Circuit breaker state per carrier (1 for the current state).\n# TYPE loa_carrier_breaker gauge\n"
        for c in status {
            for st in [CircuitBreaker.State.closed, .open, .halfOpen] {
                out += "loa_carrier_breaker{carrier=\"\(c.name)\",state=\"\(st.rawValue)\"} \(c.breaker == st ? 1 : 0)\n"
            }
        }
        perCarrier("loa_queue_depth", "gauge", "Queued messages per carrier.") { "\(queue[$0.name] ?? 0)" }
        perCarrier("loa_sms_parts_sent_total", "counter", "SMS parts of the messages each carrier accepted since start.") { "\($0.segmentsSent)" }
        perCarrier("loa_carrier_requests_total", "counter", "HTTP requests started per carrier since start.") { "\($0.requests)" }
        perCarrier("loa_limiter_tokens", "gauge", "Tokens in each carrier's bucket now (negative while long messages are paid for).") { "\($0.tokens)" }
        perCarrier("loa_carrier_paused", "gauge", "1 while a Retry-After answer pauses the carrier.") { $0.pausedUntil > 0 ? "1" : "0" }
        perCarrier("loa_carrier_handoff_outstanding", "gauge",
                   "Messages handed to the gateway and not yet passed on (no smsc-accepted, buffered or final receipt); pace_from_receipts carriers.") {
            "\($0.handoffOutstanding)"
        }
        perCarrier("loa_carrier_passon_rate", "gauge", "The gateway's pass-on pace learned from its receipts, messages per second (0: not known).") {
            "\($0.passOnRate ?? 0)"
        }
        perCarrier("loa_carrier_auth_refused", "gauge", "1 while the gateway refuses Loa's credentials (401/403): the breaker holds its messages.") {
            $0.authRefused != nil ? "1" : "0"
        }
        perCarrier("loa_carrier_paused_identical_failures", "gauge",
                   "1 while the carrier is paused after identical permanent answers in a row (`loa carriers resume` ends it).") {
            $0.pausedReason != nil ? "1" : "0"
        }
        perCarrier("loa_carrier_request_rate_limit", "gauge", "The request rate allowed now (requests_per_second, lower after throttling); 0: none.") {
            "\($0.allowedRequestRate ?? 0)"
        }
        out += "# HELP loa_carrier_answers_total Gateway answers per carrier by class, one per message, since start.\n# TYPE loa_carrier_answers_total counter\n"
        for c in status {
            for cls in ["accepted", "temporary", "throttled", "permanent", "unavailable", "ambiguous", "unauthorized"] {
                out += "loa_carrier_answers_total{carrier=\"\(c.name)\",class=\"\(cls)\"} \(c.answers[cls] ?? 0)\n"
            }
        }
        out += deliveryLog?.prometheus ?? ""
        out += "# HELP loa_receipt_latency_seconds Time from the gateway's acceptance to the final receipt.\n# TYPE loa_receipt_latency_seconds histogram\n"
        out += store.receiptLatency.withLock { $0 }.prometheus("loa_receipt_latency_seconds")
        return ServerResponse(status: 200, headers: [.init("Content-Type", "text/plain; version=0.0.4")], body: Array(out.utf8))
    }
}
