import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import LoaStore
import Synchronization

/// Health, readiness and metrics: what probes and Prometheus read.
extension DaemonService {
    /// The probes are open (``Access/open``): they say only that the daemon is up and its store takes work.
    /// Metrics name campaigns and carriers, so they need a token: the operator's, or the read-only scrape token
    /// (`metrics_token`), which nothing else accepts. The metrics themselves are in `MetricsRoutes.swift`.
    static let healthEndpoints: [Endpoint] = [
        Endpoint("GET", "/healthz", access: .open) { _, _ in .value(["status": "ok"]) },
        Endpoint("GET", "/readyz", access: .open) { s, _ in try s.readyz() },
        Endpoint("GET", "/metrics", access: .metricsReader) { s, _ in .response(s.metrics()) },
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
}
