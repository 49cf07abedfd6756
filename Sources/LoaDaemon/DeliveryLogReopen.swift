import LoaCore
import LoaStore

extension DeliveryLogFile {
    /// The reopen counts for `/metrics`: an alert on `time() - loa_delivery_log_last_reopen_timestamp_seconds
    /// > 2 * 86400` (with daily rotation) or on `increase(loa_delivery_log_reopen_failures_total[1d]) > 0` catches a
    /// rotation that did not reach the daemon.
    func writeMetrics(_ p: inout PrometheusText) {
        p.family("loa_delivery_log_reopens_total", .counter, "Reopens of the delivery log (SIGHUP after logrotate) since start.")
        p.sample("loa_delivery_log_reopens_total", reopens)
        p.family("loa_delivery_log_reopen_failures_total", .counter, "Reopens that failed since start (the old file is still written).")
        p.sample("loa_delivery_log_reopen_failures_total", reopenFailures)
        p.family("loa_delivery_log_last_reopen_timestamp_seconds", .gauge,
                 "When the delivery log was last reopened (Unix time; 0: not since start).")
        p.sample("loa_delivery_log_last_reopen_timestamp_seconds", Double(lastReopenAt) / 1000)
    }
}
