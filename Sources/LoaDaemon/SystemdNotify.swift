import Foundation
import LoaCore
import LoaStore
import Synchronization

/// Tells systemd how the daemon is (sd_notify(3)'s datagram protocol, written here: it is one `sendto(2)`, and
/// libsystemd would be the only reason to link another library).
///
/// Under `Type=notify` systemd passes `NOTIFY_SOCKET`: an `AF_UNIX` datagram socket, a path, or an abstract name
/// written with a leading `@` (the `@` stands for the name's leading NUL). Each state is one datagram of
/// newline-separated `KEY=value` lines: `READY=1` once the listeners take requests (systemd then starts the units
/// ordered after Loa, and `systemctl start` returns), `STOPPING=1` when a stop begins, `WATCHDOG=1` from
/// ``Watchdog`` (https://www.freedesktop.org/software/systemd/man/sd_notify.html). Without `NOTIFY_SOCKET`
/// (a terminal, a test, another supervisor) nothing is sent.
public struct SystemdNotifier: Sendable {
    /// The socket's address as given (`/run/systemd/notify`, `@name`); nil: not under systemd's notify.
    public let socket: String?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let s = environment["NOTIFY_SOCKET"] ?? ""
        socket = s.hasPrefix("/") || (s.hasPrefix("@") && s.utf8.count > 1) ? s : nil
    }

    /// Sends one datagram of `KEY=value` lines; false when there is no socket or the send failed (systemd gone: a
    /// failed notification never stops the daemon).
    @discardableResult
    public func send(_ fields: [String]) -> Bool {
        guard let socket else { return false }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socket.utf8)
        guard path.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            buf.copyBytes(from: path)
            if path[0] == UInt8(ascii: "@") { buf[0] = 0 }
        }
        // An abstract name's length is exactly its bytes (it has no terminating NUL); a path's includes the NUL.
        let length = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + path.count + (path[0] == UInt8(ascii: "@") ? 0 : 1)
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let message = Array(fields.joined(separator: "\n").utf8)
        // Never blocking: a datagram to a socket whose queue is full (net.unix.max_dgram_qlen, 10 by default, when
        // nobody reads it) would otherwise block until it is read, and a STOPPING=1 would hold up the stop. A full
        // queue is retried for at most a second, then the datagram is dropped (a lost WATCHDOG=1 is followed by the
        // next one at half the period).
        for attempt in 0..<20 {
            let sent = withUnsafePointer(to: &addr) { a in
                a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), sa, socklen_t(length)) }
                }
            }
            if sent == message.count { return true }
            guard sent < 0, errno == EAGAIN || errno == EINTR, attempt < 19 else { return false }
            usleep(50_000)
        }
        return false
    }
}

/// Pings systemd's watchdog (`WATCHDOG=1`) at half of `WATCHDOG_USEC` from a thread of its own, but only while the
/// parts that move messages are alive: the dispatcher's thread has not ended and is not stuck in one round, the
/// store's writer is open and not stuck in one transaction (``problem(dispatcher:writer:stuckAfter:)``). When they
/// are not, the pings stop and systemd, after `WatchdogSec=`, kills the daemon with SIGABRT and restarts it
/// (`Restart=on-failure`); messages in flight then become `unknown` at the start, never resent.
///
/// Why these two: a daemon whose HTTP server answers while its dispatcher is wedged looks healthy to every probe
/// and sends nothing. The writer is judged by ``WriterHealth`` (stamped by the writer, read from memory): a
/// transaction running longer than the limit is stuck; a failed one is not (a restart would not mend a full disk).
/// The limit is the watchdog period or 30 s, whichever is longer: the longest transactions seen (checkpoints, large
/// ingest batches) stay well under a second, and a loaded machine must not restart a working daemon.
final class Watchdog: Sendable {
    let notifier: SystemdNotifier
    /// `WATCHDOG_USEC`, when set for this process (`WATCHDOG_PID` absent or ours).
    let period: Duration?
    let worker = Worker(name: "loa-watchdog")
    private let stopping = Atomic<Bool>(false)

    init(notifier: SystemdNotifier, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.notifier = notifier
        let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init) ?? 0
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        period = notifier.socket != nil && usec > 0 && forUs ? .microseconds(Int64(min(usec, UInt64(Int64.max)))) : nil
    }

    /// Why the daemon must not ping now, or nil when the dispatcher and the store writer are alive.
    static func problem(dispatcher: (finished: Bool, busyFor: Duration?), writer: WriterHealth, stuckAfter: Duration,
                        now: ContinuousClock.Instant = .now) -> String? {
        if dispatcher.finished { return "the dispatcher's thread has ended" }
        if let busy = dispatcher.busyFor, busy > stuckAfter {
            return "the dispatcher has been in one round for \(Int(busy.components.seconds)) s"
        }
        var alive = writer
        alive.lastFailure = nil  // a failed transaction is not a dead writer
        return alive.problem(now: now, stuckAfter: stuckAfter)
    }

    /// Starts pinging at half the period (nothing when systemd asked for no watchdog). `check` says why not to ping.
    func start(logger: Logger, check: @escaping @Sendable (Duration) -> String?) {
        guard let period else { return }
        let stuckAfter = max(period, .seconds(30))
        let interval = Double(period.components.seconds) / 2 + Double(period.components.attoseconds) / 2e18
        worker.start { [self] worker in
            var withheld = false
            repeat {
                // Once a stop has begun the parts end one by one: the pings go on until the process exits.
                let problem = stopping.load(ordering: .relaxed) ? nil : check(stuckAfter)
                if let problem {
                    if !withheld { logger.error("watchdog: not pinging systemd; it will restart the daemon", ["problem": problem]) }
                    withheld = true
                } else {
                    if withheld { logger.notice("watchdog: pinging systemd again") }
                    withheld = false
                    notifier.send(["WATCHDOG=1"])
                }
            } while worker.wait(until: .after(seconds: interval))
        }
    }

    /// A stop has begun: ping without checking from now on.
    func stopBegan() { stopping.store(true, ordering: .relaxed) }

    func stop() { worker.stop(by: .after(seconds: 5)) }
}
