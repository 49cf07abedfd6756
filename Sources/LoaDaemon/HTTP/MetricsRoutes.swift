import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import LoaStore

/// `/metrics`: Prometheus's text format, in its naming (base units, `_total` counters, histograms with
/// `_bucket{le}`, `_sum`, `_count`; see ``PrometheusText``). Every per-carrier series is written for every
/// configured carrier, at 0 before anything happened, so `rate()` and the shipped alerts see it from the start.
///
/// The families, by what they answer:
/// - is it moving: `loa_carrier_request_duration_seconds` (histogram), `loa_carrier_requests_total`,
///   `loa_carrier_answers_total{class}`, `loa_message_retries_total`, `loa_message_requeues_total`,
///   `loa_queue_depth`, `loa_queue_due`, `loa_queue_oldest_age_seconds`, `loa_carrier_breaker{state}`;
/// - does it arrive: `loa_receipt_latency_seconds` (histogram per carrier), `loa_receipts_final_total{state}`,
///   `loa_receipts_overdue_total`;
/// - per campaign, bounded by ``CampaignSeries``: `loa_messages`, `loa_campaign_sms_parts`,
///   `loa_campaign_recovered_unknown`; for running ones `loa_campaign_deadline_timestamp_seconds`,
///   `loa_campaign_send_window_open`, `loa_campaign_window_seconds_left`; `loa_campaigns{state}` counts all;
/// - the process: `process_*` (``ProcessStats``) and `loa_build_info{version}`;
/// - in a cluster on PostgreSQL (issue 21), every live node as the last lease round read it: `loa_cluster_nodes_alive`,
///   `loa_cluster_lease_remaining_seconds{node}`, per carrier and node `loa_cluster_carrier_sent_total`,
///   `loa_cluster_carrier_rate`, `loa_cluster_carrier_in_flight`, `loa_cluster_carrier_share`, and their sums over the
///   live nodes `loa_cluster_total_sent`, `loa_cluster_total_rate`, `loa_cluster_total_in_flight`, `loa_cluster_total_share`.
extension DaemonService {
    func metrics() -> ServerResponse {
        let campaigns: [CampaignRecord]
        do {
            campaigns = try store.campaigns()
        } catch {
            // The store's error can carry SQLite's message and SQL: logged, never sent.
            logger.error("metrics: the store did not answer", ["error": "\(error)"])
            return self.error(503, "store-unavailable", "the store did not answer; the daemon's log has the detail")
        }
        let now = clock.now()
        let status = dispatcher.status()
        var p = PrometheusText()
        writeProcess(&p)
        writeCampaigns(&p, campaigns, now: now)
        writeQueues(&p, campaigns, carriers: status.map(\.name), now: now)
        writeRecovery(&p)
        deliveryLog?.writeMetrics(&p)
        writeCarriers(&p, status)
        writeRequests(&p, status.map(\.name))
        writeReceipts(&p, status.map(\.name))
        writeCluster(&p, status)
        return ServerResponse(status: 200, headers: [.init("Content-Type", "text/plain; version=0.0.4")], body: Array(p.text.utf8))
    }

    private func writeProcess(_ p: inout PrometheusText) {
        p.family("loa_build_info", .gauge, "Always 1; the labels say which Loa this is.")
        p.sample("loa_build_info", ["version": BuildInfo.version], Int64(1))
        guard let s = ProcessReader.read() else { return }
        p.family("process_cpu_seconds_total", .counter, "Total user and system CPU time spent in seconds.")
        p.sample("process_cpu_seconds_total", s.cpuSeconds)
        p.family("process_resident_memory_bytes", .gauge, "Resident memory size in bytes.")
        p.sample("process_resident_memory_bytes", s.residentBytes)
        p.family("process_virtual_memory_bytes", .gauge, "Virtual memory size in bytes.")
        p.sample("process_virtual_memory_bytes", s.virtualBytes)
        p.family("process_open_fds", .gauge, "Number of open file descriptors.")
        p.sample("process_open_fds", s.openFDs)
        p.family("process_max_fds", .gauge, "Maximum number of open file descriptors.")
        p.sample("process_max_fds", s.maxFDs)
        p.family("process_start_time_seconds", .gauge, "Start time of the process since unix epoch in seconds.")
        p.sample("process_start_time_seconds", s.startTimeSeconds)
    }

    private func writeCampaigns(_ p: inout PrometheusText, _ all: [CampaignRecord], now: UnixMillis) {
        p.family("loa_campaigns", .gauge, "Campaigns per state, all of them.")
        let byState = Dictionary(grouping: all, by: \.state)
        for state in CampaignState.allCases { p.sample("loa_campaigns", ["state": state.rawValue], Int64(byState[state]?.count ?? 0)) }
        let kept = CampaignSeries.kept(all, now: now, finished: { $0.state.isFinal }, finishedAt: \.updatedAt)
        let rule = " Per-campaign series are kept for \(CampaignSeries.rule)."
        p.family("loa_messages", .gauge, "Messages by campaign, carrier and state." + rule)
        for c in kept {
            for (carrier, states) in c.carriers.sorted(by: { $0.key < $1.key }) {
                for (state, n) in states.sorted(by: { $0.key < $1.key }) {
                    p.sample("loa_messages", ["campaign": c.id, "carrier": carrier, "state": state], n)
                }
            }
        }
        p.family("loa_campaign_sms_parts", .gauge, "SMS parts of a campaign's accepted messages." + rule)
        for c in kept { p.sample("loa_campaign_sms_parts", ["campaign": c.id], c.segmentsTotal) }
        p.family("loa_campaign_recovered_unknown", .gauge,
                 "Messages of a campaign found in flight at a start and made unknown, over all starts." + rule)
        for c in kept where c.recoveredUnknown > 0 { p.sample("loa_campaign_recovered_unknown", ["campaign": c.id], c.recoveredUnknown) }
        // What the deadline alert weighs, for running campaigns: the queue against the send-window time left.
        let running = kept.filter { $0.state == .running }.map { ($0, $0.spec?.sendWindows ?? .standard) }
        p.family("loa_campaign_deadline_timestamp_seconds", .gauge, "A running campaign's deadline, seconds since the epoch.")
        for (c, _) in running { p.sample("loa_campaign_deadline_timestamp_seconds", ["campaign": c.id], Double(c.deadlineAt) / 1000) }
        p.family("loa_campaign_send_window_open", .gauge, "1 while a running campaign is inside one of its send windows.")
        for (c, w) in running { p.sample("loa_campaign_send_window_open", ["campaign": c.id], Int64(w.isOpen(at: now) ? 1 : 0)) }
        p.family("loa_campaign_window_seconds_left", .gauge,
                 "Seconds of a running campaign's send windows between now and its deadline: the sending time it has left.")
        for (c, w) in running {
            p.sample("loa_campaign_window_seconds_left", ["campaign": c.id], now >= c.deadlineAt ? 0 : w.openSeconds(from: now, to: c.deadlineAt))
        }
    }

    /// Queue depth per carrier from the store's counts (every campaign, kept or not); what is due now (running,
    /// inside a send window); and how long the oldest queued message of a running campaign has waited.
    private func writeQueues(_ p: inout PrometheusText, _ all: [CampaignRecord], carriers: [String], now: UnixMillis) {
        var depth: [String: Int64] = [:]
        var due: [String: Int64] = [:]
        var since: [String: UnixMillis] = [:]
        for c in all {
            let running = c.state == .running
            let open = running && (c.spec?.sendWindows ?? .standard).isOpen(at: now)
            for (carrier, states) in c.carriers {
                let n = states[MessageState.queued.name] ?? 0
                guard n > 0 else { continue }
                depth[carrier, default: 0] += n
                if open { due[carrier, default: 0] += n }
                if running { since[carrier] = min(since[carrier] ?? .max, max(c.startAt, c.createdAt)) }
            }
        }
        p.family("loa_queue_depth", .gauge, "Queued messages per carrier, every campaign (scheduled and paused ones too).")
        for c in carriers { p.sample("loa_queue_depth", ["carrier": c], depth[c] ?? 0) }
        p.family("loa_queue_due", .gauge,
                 "Queued messages per carrier of running campaigns inside a send window now: what the carrier should be sending (retries waiting their time too).")
        for c in carriers { p.sample("loa_queue_due", ["carrier": c], due[c] ?? 0) }
        p.family("loa_queue_oldest_age_seconds", .gauge,
                 "How long the oldest queued message of a running campaign has waited, from its campaign's start; 0: none queued.")
        for c in carriers { p.sample("loa_queue_oldest_age_seconds", ["carrier": c], since[c].map { Double(max(0, now - $0)) / 1000 } ?? 0) }
    }

    private func writeRecovery(_ p: inout PrometheusText) {
        let r = store.recovery
        p.family("loa_recovery_unknown_messages", .gauge, "Messages in flight at the last stop, made unknown (never resent) at this start.")
        p.sample("loa_recovery_unknown_messages", r.unknownMessages)
        p.family("loa_recovery_log_lines_repaired", .gauge, "Delivery-log lines cut (torn, uncommitted) or written (outbox) at this start.")
        p.sample("loa_recovery_log_lines_repaired", Int64(r.logLinesRepaired))
        p.family("loa_recovery_seconds", .gauge, "Time this start's recovery took (log repair, in-flight scan).")
        p.sample("loa_recovery_seconds", r.seconds)
        p.family("loa_store_rows_written_total", .counter, "Rows the store's committed transactions inserted, updated or deleted since start.")
        p.sample("loa_store_rows_written_total", store.rowsWritten)
        p.family("loa_store_transactions_total", .counter, "Transactions the store committed since start (group commits).")
        p.sample("loa_store_transactions_total", store.transactionsCommitted)
    }
}

extension DaemonService {
    /// The dispatcher's view of each carrier now: rates, limits, breaker, answers by class.
    fileprivate func writeCarriers(_ p: inout PrometheusText, _ status: [Dispatcher.CarrierStatus]) {
        /// One gauge or counter with a value per carrier.
        func perCarrier(_ name: String, _ kind: PrometheusText.Kind, _ help: String, _ value: (Dispatcher.CarrierStatus) -> Double) {
            p.family(name, kind, help)
            for c in status { p.sample(name, ["carrier": c.name], value(c)) }
        }
        perCarrier("loa_carrier_in_flight", .gauge, "Requests in flight per carrier.") { Double($0.inFlight) }
        perCarrier("loa_carrier_rate", .gauge, "Messages started per second over the last 10 s.") { $0.currentRate }
        perCarrier("loa_carrier_rate_limit", .gauge, "Configured rate per second (in the carrier's rate_unit).") { $0.configuredRate }
        perCarrier("loa_carrier_allowed_rate", .gauge, "The adaptive limiter's rate now (lower after throttling).") { $0.allowedRate }
        p.family("loa_carrier_breaker", .gauge, "Circuit breaker state per carrier (1 for the current state).")
        for c in status {
            for st in [CircuitBreaker.State.closed, .open, .halfOpen] {
                p.sample("loa_carrier_breaker", ["carrier": c.name, "state": st.rawValue], Int64(c.breaker == st ? 1 : 0))
            }
        }
        perCarrier("loa_sms_parts_sent_total", .counter, "SMS parts of the messages each carrier accepted since start.") { Double($0.segmentsSent) }
        perCarrier("loa_carrier_requests_total", .counter, "HTTP requests started per carrier since start.") { Double($0.requests) }
        perCarrier("loa_limiter_tokens", .gauge, "Tokens in each carrier's bucket now (negative while long messages are paid for).") { Double($0.tokens) }
        perCarrier("loa_carrier_paused", .gauge, "1 while a Retry-After answer pauses the carrier.") { $0.pausedUntil > 0 ? 1 : 0 }
        perCarrier("loa_carrier_handoff_outstanding", .gauge,
                   "Messages handed to the gateway and not yet passed on (no smsc-accepted, buffered or final receipt); pace_from_receipts carriers.") {
            Double($0.handoffOutstanding)
        }
        perCarrier("loa_carrier_handoff_passed_on_total", .counter,
                   "Receipts that took one of this node's messages out of the hand-off window since start, wherever they landed.") {
            Double($0.handoffPassedOn)
        }
        perCarrier("loa_carrier_passon_rate", .gauge, "The gateway's pass-on pace learned from its receipts, messages per second (0: not known).") {
            $0.passOnRate ?? 0
        }
        perCarrier("loa_carrier_auth_refused", .gauge, "1 while the gateway refuses Loa's credentials (401/403): the breaker holds its messages.") {
            $0.authRefused != nil ? 1 : 0
        }
        perCarrier("loa_carrier_paused_identical_failures", .gauge,
                   "1 while the carrier is paused after identical permanent answers in a row (`loa carriers resume` ends it).") {
            $0.pausedReason != nil ? 1 : 0
        }
        perCarrier("loa_carrier_request_rate_limit", .gauge, "The request rate allowed now (requests_per_second, lower after throttling); 0: none.") {
            $0.allowedRequestRate ?? 0
        }
        p.family("loa_carrier_answers_total", .counter,
                 "Gateway answers per carrier by outcome class, one per message, since start (accepted, temporary, throttled, permanent, unavailable: not reached, ambiguous: may have reached it, unauthorized).")
        for c in status {
            for cls in Self.answerClasses { p.sample("loa_carrier_answers_total", ["carrier": c.name, "class": cls], c.answers[cls] ?? 0) }
        }
    }

    /// The cluster's nodes and their carriers (nothing without a cluster). Other nodes' figures are what they last
    /// published (at most a renewal round old); a node that left is no longer written.
    fileprivate func writeCluster(_ p: inout PrometheusText, _ local: [Dispatcher.CarrierStatus]) {
        guard let leases = dispatcher.clusterLeases() else { return }
        let view = dispatcher.clusterView(local)
        p.family("loa_cluster_nodes_alive", .gauge, "Nodes whose lease had not ended at the last renewal round.")
        p.sample("loa_cluster_nodes_alive", Int64(leases.alive))
        p.family("loa_cluster_lease_remaining_seconds", .gauge, "Seconds left of each live node's lease, by the database's clock.")
        for l in leases.leaseLeft { p.sample("loa_cluster_lease_remaining_seconds", ["node": l.node], l.seconds) }
        /// One family per node and carrier, and the sum over the live nodes.
        func perNode(_ name: String, _ kind: PrometheusText.Kind, _ help: String, total: String, _ value: (Dispatcher.NodeFigures) -> Double) {
            p.family(name, kind, help)
            for c in view { for n in c.nodes ?? [] { p.sample(name, ["carrier": c.name, "node": n.node], value(n)) } }
            p.family(total, .gauge, help + " Summed over the live nodes.")
            for c in view { p.sample(total, ["carrier": c.name], (c.nodes ?? []).reduce(0) { $0 + value($1) }) }
        }
        perNode("loa_cluster_carrier_sent_total", .counter, "Messages the gateway accepted from each node since the node started.",
                total: "loa_cluster_total_sent") { Double($0.sent) }
        perNode("loa_cluster_carrier_rate", .gauge, "Messages each node started per second over the last 10 s.", total: "loa_cluster_total_rate") {
            $0.currentRate
        }
        perNode("loa_cluster_carrier_in_flight", .gauge, "Requests in flight per node.", total: "loa_cluster_total_in_flight") { Double($0.inFlight) }
        perNode("loa_cluster_carrier_share", .gauge, "Each node's fraction of the carrier's limits (0 while a joining node waits to be counted).",
                total: "loa_cluster_total_share") { $0.share }
    }

    /// The classes of ``Dispatcher/answerClass(_:)``, in the order `/metrics` writes them.
    static let answerClasses = ["accepted", "temporary", "throttled", "permanent", "unavailable", "ambiguous", "unauthorized"]

    fileprivate func writeRequests(_ p: inout PrometheusText, _ carriers: [String]) {
        let s = dispatcher.sendStats.withLock { $0 }
        p.family("loa_carrier_request_duration_seconds", .histogram,
                 "Gateway requests per carrier by duration, from the request's start in Loa (waiting for a connection included) to its answer or failure.")
        for c in carriers { p.histogram("loa_carrier_request_duration_seconds", ["carrier": c], s.requests(c)) }
        p.family("loa_message_retries_total", .counter, "Messages given another attempt after a temporary failure (an attempt spent), per carrier.")
        for c in carriers { p.sample("loa_message_retries_total", ["carrier": c], s.retries[c] ?? 0) }
        p.family("loa_message_requeues_total", .counter,
                 "Messages put back in the queue without spending an attempt (throttled, gateway unreachable, credentials refused, carrier paused), per carrier.")
        for c in carriers { p.sample("loa_message_requeues_total", ["carrier": c], s.requeues[c] ?? 0) }
    }

    /// Receipts per carrier, from the store's counts since start; a carrier no longer configured whose messages
    /// still get receipts is shown too.
    fileprivate func writeReceipts(_ p: inout PrometheusText, _ configured: [String]) {
        let s = store.receiptStats.withLock { $0 }
        let carriers = configured + Set(s.latency.keys).union(s.overdue.keys).subtracting(configured).sorted()
        p.family("loa_receipt_latency_seconds", .histogram, "Time from the gateway's acceptance to the final receipt, per carrier.")
        for c in carriers { p.histogram("loa_receipt_latency_seconds", ["carrier": c], s.latency(c)) }
        p.family("loa_receipts_final_total", .counter, "Messages a receipt made final since start, per carrier and final state.")
        for c in carriers {
            let settled = s.settled[c] ?? [:]
            let states = ReceiptStats.finalStates + settled.keys.filter { !ReceiptStats.finalStates.contains($0) }.sorted()
            for st in states { p.sample("loa_receipts_final_total", ["carrier": c, "state": st], settled[st] ?? 0) }
        }
        p.family("loa_receipts_overdue_total", .counter,
                 "Messages whose final receipt did not come within receipt_timeout_hours (made unknown) since start, per carrier.")
        for c in carriers { p.sample("loa_receipts_overdue_total", ["carrier": c], s.overdue[c] ?? 0) }
    }
}
