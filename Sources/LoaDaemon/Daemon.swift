import Foundation
import LoaCarriers
import LoaCore
import LoaServer
import LoaStore

/// The running daemon: wires store → dispatcher → adapters → server, and routes signals.
///
/// A ``Supervisor`` starts the parts in order (store, curl engine, HTTP servers, receipt poller, dispatcher) and
/// stops them in reverse, so the servers keep taking receipts while in-flight sends drain; a start that fails
/// stops the parts already started. First SIGTERM/SIGINT: stop claiming, drain to
/// `drain_seconds`, record everything, close, exit 0. A second one exits at once (messages still in flight are
/// reported `unknown` at the next start, never resent). SIGHUP reopens the delivery log, and the daemon's log
/// confirms it (``logReopen(_:path:logger:)``).
///
/// Under systemd (`Type=notify`, ``SystemdNotifier``) it says `READY=1` once the listeners take requests and
/// `STOPPING=1` when a stop begins, and pings the watchdog while the dispatcher and the store writer are alive
/// (``Watchdog``).
public enum Daemon {
    /// `allowSharedDataDir`: start even when group or others may read the data directory or its files (see
    /// ``DataDirAccess``), with a warning per path; without it such a directory is refused.
    public static func run(config: LoaConfig, allowSharedDataDir: Bool = false) -> Int32 {
        let logger = Logger(label: "loa", level: config.logLevel)
        umask(0o077)
        let exposed = DataDirAccess.exposed(dataDir: config.dataDir)
        for e in exposed {
            let meta = ["path": e.path, "mode": e.octal]
            if allowSharedDataDir {
                logger.warning("group or others may read this part of the data directory (allowed by --allow-shared-data-dir)", meta)
            } else {
                logger.error("refusing to start: group or others may read this part of the data directory; "
                             + "chmod 700 the directory and 600 its files, or start with --allow-shared-data-dir", meta)
            }
        }
        if !exposed.isEmpty && !allowSharedDataDir { return 1 }
        // Signals are taken synchronously by one thread, so handlers never run on arbitrary threads.
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)

        let clock = SystemTimeSource()
        let notifier = SystemdNotifier()
        // Started in dependency order, stopped in reverse: the dispatcher first (it drains while the servers still
        // take receipts for what it sent and the poller still asks), the store last.
        let group = Supervisor(logger: logger)
        let log: DeliveryLogFile
        let reopenLog: @Sendable () -> Void
        let server: HTTPServer
        let watchdog = Watchdog(notifier: notifier)
        var alive: @Sendable (Duration) -> String? = { _ in nil }
        var receiptServer: HTTPServer?
        do {
            let store = try group.start("store", failure: "cannot open the store", metadata: ["data_dir": config.dataDir], stopWithin: 60, {
                try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                let log = try DeliveryLogFile(path: config.dataDir + "/delivery.log")
                let path = log.path
                log.onReopen = { logReopen($0, path: path, logger: logger) }
                switch config.store {
                case .sqlite:
                    let sqlite = try Store(directory: config.dataDir, log: log, clock: clock, maskNumbers: config.maskNumbersInLog, logger: logger)
                    return (sqlite as any MessageStore, log, { sqlite.reopenDeliveryLog() } as @Sendable () -> Void)
                case .postgresql(let settings):
                    let pg = try PostgresStore(settings: settings, directory: config.dataDir, log: log, clock: clock,
                                               maskNumbers: config.maskNumbersInLog, logger: logger)
                    return (pg as any MessageStore, log, { pg.reopenDeliveryLog() } as @Sendable () -> Void)
                }
            }, stop: { $0.0.close() })
            log = store.1
            reopenLog = store.2
            logRecovery(store.0.recovery, logger: logger)
            let engine = try group.start("curl engine", failure: "cannot start the HTTP client", stopWithin: 10, {
                try CurlEngine(maxConnectionsPerHost: max(8, config.carriers.map(\.maxInFlight).max() ?? 32))
            }, stop: { $0.shutdown() })
            let (adapters, receiptFormats) = carriers(config, engine: engine)
            let poller = ReceiptPoller(store: store.0, adapters: adapters, clock: clock, logger: logger)
            try group.step("receipt polling", failure: "cannot prepare the store for receipt polling") {
                try store.0.preparePolling(enabled: poller != nil)
            }
            let dispatcher = Dispatcher(store: store.0, adapters: adapters, config: config, clock: clock, logger: logger)
            let service = DaemonService(store: store.0, config: config, dispatcher: dispatcher, logger: logger, clock: clock, receiptFormats: receiptFormats,
                                        poller: poller, deliveryLog: store.1)
            server = try group.start("http server", failure: "cannot listen",
                                     metadata: ["listen.address": config.listenAddress, "listen.port": "\(config.listenPort)"], stopWithin: 60, {
                try HTTPServer(address: config.listenAddress, port: config.listenPort, limits: config.listenLimits,
                               service: ListenerService(role: config.receiptsListen == nil ? .all : .api, inner: service))
            }, stop: { $0.stop() })
            if let r = config.receiptsListen {
                receiptServer = try group.start("receipt server", failure: "cannot listen",
                                                metadata: ["receipts_listen.address": r.address, "receipts_listen.port": "\(r.port)"], stopWithin: 60, {
                    try HTTPServer(address: r.address, port: r.port, limits: r.limits, service: ListenerService(role: .receipts, inner: service))
                }, stop: { $0.stop() })
            }
            if let poller {
                let longest = config.carriers.map(\.timeout).max() ?? 0
                _ = try group.start("receipt poller", failure: "cannot start the receipt poller", stopWithin: longest + 30,
                                    { poller.start() }, stop: { poller.stop() })
            }
            _ = try group.start("pace sampler", failure: "cannot start the pace sampler", stopWithin: 10,
                                { service.paces.start(store: store.0, clock: clock) }, stop: { service.paces.stop() })
            let drain = config.drainSeconds
            _ = try group.start("dispatcher", failure: "cannot start the dispatcher", stopWithin: drain + 60,
                                { dispatcher.start() }, stop: { dispatcher.stop(drainSeconds: drain) })
            let writer = store.0
            alive = { stuckAfter in
                Watchdog.problem(dispatcher: (dispatcher.worker.isFinished, dispatcher.worker.busyFor), writer: writer.writerHealth, stuckAfter: stuckAfter)
            }
        } catch {
            return 1
        }
        var ready = ["listen.address": config.listenAddress, "listen.port": "\(server.port)",
                     "carriers": config.carriers.map(\.name).joined(separator: ","), "data_dir": config.dataDir]
        if let receiptServer, let r = config.receiptsListen {
            ready["receipts_listen.address"] = r.address
            ready["receipts_listen.port"] = "\(receiptServer.port)"
        }
        logger.notice("loa ready", ready)
        notifier.send(["READY=1", "STATUS=listening on \(config.listenAddress):\(server.port)"])
        watchdog.start(logger: logger, check: alive)
        if let period = watchdog.period {
            logger.info("systemd watchdog on", ["watchdog.seconds": String(format: "%.3f", Double(period.components.seconds) + Double(period.components.attoseconds) / 1e18)])
        }

        while true {
            var sig: Int32 = 0
            sigwait(&set, &sig)
            if sig == SIGHUP {
                log.requestReopen()
                reopenLog()
                continue
            }
            break
        }
        watchdog.stopBegan()
        notifier.send(["STOPPING=1", "STATUS=draining in-flight sends"])
        logger.notice("shutting down: draining in-flight sends", ["drain_seconds": "\(config.drainSeconds)"])
        // A second signal during the drain exits at once.
        let watcher = Thread {
            var s: Int32 = 0
            var again = sigset_t()
            sigemptyset(&again)
            sigaddset(&again, SIGTERM)
            sigaddset(&again, SIGINT)
            sigwait(&again, &s)
            logger.error("second signal, exiting now")
            _exit(1)
        }
        watcher.start()
        let stuck = group.stop()
        watchdog.stop()
        if !stuck.isEmpty {
            logger.error("loa stopped with parts still running", ["parts": stuck.joined(separator: ",")])
            return 1
        }
        logger.notice("loa stopped")
        return 0
    }

    /// Confirms a reopen of the delivery log (SIGHUP, after logrotate moved it) or says loudly that it failed:
    /// then the lines still go to the file logrotate moved away, which the next rotation compresses or deletes.
    static func logReopen(_ r: DeliveryLogFile.Reopen, path: String, logger: Logger) {
        switch r {
        case .reopened(let device, let inode):
            logger.notice("delivery log reopened", ["path": path, "file.device": "\(device)", "file.inode": "\(inode)"])
        case .failed(let why):
            logger.error("delivery log not reopened: lines still go to the old file", ["path": path, "error": why])
        }
    }

    /// One line for what opening the store recovered, every start: a warning when a stop left messages in
    /// flight (now `unknown`, never resent) or the delivery log needed repair, a notice otherwise.
    static func logRecovery(_ r: RecoveryReport, logger: Logger) {
        var meta = ["recovery.unknown_messages": "\(r.unknownMessages)", "recovery.log_lines_repaired": "\(r.logLinesRepaired)",
                    "recovery.seconds": String(format: "%.3f", r.seconds)]
        if r.logLinesRepaired > 0 {
            meta["recovery.log_torn_lines_cut"] = "\(r.tornLinesCut)"
            meta["recovery.log_uncommitted_lines_cut"] = "\(r.uncommittedLinesCut)"
            meta["recovery.log_outbox_lines_written"] = "\(r.outboxLinesWritten)"
        }
        if !r.unknownByCampaign.isEmpty {
            meta["recovery.unknown_by_campaign"] = r.unknownByCampaign.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
        }
        if r.unknownMessages > 0 || r.logLinesRepaired > 0 {
            logger.warning("recovered after an unclean stop: messages in flight are now unknown (never resent)", meta)
        } else {
            logger.notice("store opened: nothing to recover", meta)
        }
    }

    /// Each configured carrier's adapter and how its receipts are read, built by the carrier's kind
    /// (``CarrierKind/make(_:engine:)``); the fuzz harness wires the service with it too.
    static func carriers(_ config: LoaConfig, engine: CurlEngine) -> (adapters: [String: any CarrierAdapter], receiptFormats: [String: ReceiptFormat]) {
        var adapters: [String: any CarrierAdapter] = [:]
        var receiptFormats: [String: ReceiptFormat] = [:]
        for c in config.carriers {
            let parts = c.carrierKind.make(c.settings, engine: engine)
            adapters[c.name] = parts.adapter
            receiptFormats[c.name] = parts.receipts
        }
        return (adapters, receiptFormats)
    }
}
