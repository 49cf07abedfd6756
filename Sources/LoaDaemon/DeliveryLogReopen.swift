import LoaStore

extension DeliveryLogFile {
    /// The reopen counts in Prometheus' text format, for `/metrics`: an alert on `time() - loa_delivery_log_last_reopen_timestamp_seconds
    /// > 2 * 86400` (with daily rotation) or on `increase(loa_delivery_log_reopen_failures_total[1d]) > 0` catches a
    /// rotation that did not reach the daemon.
    var prometheus: String {
        "# HELP loa_delivery_log_reopens_total Reopens of the delivery log (SIGHUP after logrotate) since start.\n"
            + "# TYPE loa_delivery_log_reopens_total counter\nloa_delivery_log_reopens_total \(reopens)\n"
            + "# HELP loa_delivery_log_reopen_failures_total Reopens that failed since start (the old file is still written).\n"
            + "# TYPE loa_delivery_log_reopen_failures_total counter\nloa_delivery_log_reopen_failures_total \(reopenFailures)\n"
            + "# HELP loa_delivery_log_last_reopen_timestamp_seconds When the delivery log was last reopened (Unix time; 0: not since start).\n"
            + "# TYPE loa_delivery_log_last_reopen_timestamp_seconds gauge\n"
            + "loa_delivery_log_last_reopen_timestamp_seconds \(Double(lastReopenAt) / 1000)\n"
    }
}
