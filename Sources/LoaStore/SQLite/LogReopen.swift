extension Store {
    /// Reopens the delivery log now, on the writer thread, if ``DeliveryLogFile/requestReopen()`` asked for it
    /// (SIGHUP after logrotate): an idle daemon confirms a rotation at once instead of at its next line. Queued
    /// without waiting: the signal thread must stay free to take SIGTERM. Should the job not run (the store
    /// closing), the next append reopens.
    public func reopenDeliveryLog() {
        try? queueJob(Job { ctx in ctx.log?.reopenIfRequested() })
    }
}
