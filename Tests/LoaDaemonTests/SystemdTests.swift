import Foundation
import LoaCore
@testable import LoaStore
import Testing
@testable import LoaDaemon

@Suite struct SystemdNotifyTests {
    // The datagrams themselves, to a path and to an abstract name: SystemdTests in the integration tests, through the binary.

    @Test func withoutASocketNothingIsSent() {
        for env in [[:], ["NOTIFY_SOCKET": ""], ["NOTIFY_SOCKET": "@"], ["NOTIFY_SOCKET": "relative/path"]] {
            let notifier = SystemdNotifier(environment: env)
            #expect(notifier.socket == nil && !notifier.send(["READY=1"]), "\(env)")
        }
    }

    @Test func theWatchdogIsOnlyForThisProcessAndOnlyUnderNotify() {
        let base = ["NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "4000000"]
        #expect(Watchdog(notifier: SystemdNotifier(environment: base), environment: base).period == .seconds(4))
        let mine = base.merging(["WATCHDOG_PID": "\(getpid())"]) { $1 }
        #expect(Watchdog(notifier: SystemdNotifier(environment: mine), environment: mine).period == .seconds(4))
        let other = base.merging(["WATCHDOG_PID": "\(getpid() + 1)"]) { $1 }
        #expect(Watchdog(notifier: SystemdNotifier(environment: other), environment: other).period == nil)
        #expect(Watchdog(notifier: SystemdNotifier(environment: [:]), environment: ["WATCHDOG_USEC": "4000000"]).period == nil)
        #expect(Watchdog(notifier: SystemdNotifier(environment: base), environment: ["NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "0"]).period == nil)
    }

    /// The pings stop when the dispatcher has ended or is stuck in a round, or the store writer is closed or stuck
    /// in a transaction; a failed transaction alone does not stop them.
    @Test func thePingsStopOnlyWhenAPartIsDeadOrStuck() {
        let now = ContinuousClock.now
        let limit = Duration.seconds(30)
        var writer = WriterHealth()
        #expect(Watchdog.problem(dispatcher: (false, nil), writer: writer, stuckAfter: limit, now: now) == nil)
        #expect(Watchdog.problem(dispatcher: (false, .seconds(29)), writer: writer, stuckAfter: limit, now: now) == nil)
        #expect(Watchdog.problem(dispatcher: (false, .seconds(31)), writer: writer, stuckAfter: limit, now: now)?.contains("dispatcher has been in one round") == true)
        #expect(Watchdog.problem(dispatcher: (true, nil), writer: writer, stuckAfter: limit, now: now)?.contains("ended") == true)
        writer.lastFailure = "disk I/O error"
        writer.lastFailureAt = now
        #expect(Watchdog.problem(dispatcher: (false, nil), writer: writer, stuckAfter: limit, now: now) == nil)
        writer.busySince = now - .seconds(31)
        #expect(Watchdog.problem(dispatcher: (false, nil), writer: writer, stuckAfter: limit, now: now)?.contains("store writer") == true)
        writer.busySince = nil
        writer.closed = true
        #expect(Watchdog.problem(dispatcher: (false, nil), writer: writer, stuckAfter: limit, now: now) == "the store is closed")
    }
}

@Suite struct CredentialSecretTests {
    /// `{"credential": NAME}` reads `$CREDENTIALS_DIRECTORY/NAME` (systemd's LoadCredential=); without the
    /// directory, or with a name that is not a file name, the problem names the field.
    @Test func aCredentialIsReadFromTheCredentialsDirectory() throws {
        let s = Scratch()
        _ = s.write("creds/kannel_password", "from-credential\n")
        let config = goodConfig.replacingOccurrences(of: #"{ "file": "kannel.pw" }"#, with: #"{ "credential": "kannel_password" }"#)
        let path = s.write("loa.json", config)
        let env = ["T": "0123456789abcdef-token", "S": "receipt-secret-0123456789"]
        let c = try ConfigLoader.load(path: path, environment: env.merging(["CREDENTIALS_DIRECTORY": s.path + "/creds"]) { $1 }).get()
        #expect(c.carriers[0].password == "from-credential")
        guard case .failure(let missing) = ConfigLoader.load(path: path, environment: env) else { Issue.record("loaded without the directory"); return }
        #expect(missing.description.contains("\(path):12: carriers.0.password: credential kannel_password: CREDENTIALS_DIRECTORY is not set"), "\(missing)")
        let escaping = s.write("loa2.json", goodConfig.replacingOccurrences(of: #"{ "file": "kannel.pw" }"#, with: #"{ "credential": "../kannel.pw" }"#))
        guard case .failure(let bad) = ConfigLoader.load(path: escaping, environment: env.merging(["CREDENTIALS_DIRECTORY": s.path + "/creds"]) { $1 }) else {
            Issue.record("a name with a slash loaded"); return
        }
        #expect(bad.description.contains("carriers.0.password: credential name ../kannel.pw is not a file name"), "\(bad)")
    }
}
