import Foundation
import Synchronization
import LoaCarriers
import LoaCore
import Testing

/// Paths and helpers shared by the integration tests: the real `loa` binary, real peers on 127.0.0.1.
enum Env {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The `loa` binary: $LOA_BIN, else the debug build next to the tests.
    static var loaBinary: String {
        if let b = ProcessInfo.processInfo.environment["LOA_BIN"], !b.isEmpty { return b }
        return root + "/.build/debug/loa"
    }

    static var harness: String { root + "/Tests/IntegrationTests/kannel/kannel-harness.sh" }
}

/// A scratch directory removed at the end (kept when LOA_KEEP_TEST_DIRS is set, for post-mortems).
final class WorkDir: @unchecked Sendable {
    let path: String
    init(_ label: String) {
        path = NSTemporaryDirectory() + "loa-it-\(label)-" + String(UUID().uuidString.prefix(8))
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func write(_ name: String, _ text: String) {
        let p = file(name)
        try! FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! text.write(toFile: p, atomically: true, encoding: .utf8)
    }
    deinit {
        if ProcessInfo.processInfo.environment["LOA_KEEP_TEST_DIRS"] == nil { try? FileManager.default.removeItem(atPath: path) }
    }
}

/// A child process we started, by posix_spawn; stopped by its own pid only.
///
/// Foundation's `Process.waitUntilExit` was seen to hang forever in Swift Testing's async tests on Linux
/// (its termination monitor never fired), so children are spawned and reaped with the POSIX calls directly.
/// Output goes to a file, never a pipe, so a grandchild that keeps the descriptor cannot block us.
final class Child: @unchecked Sendable {
    let pid: pid_t
    let logPath: String
    private var status: Int32?

    /// `errLog`: stderr to a file of its own (nil: with stdout, in `log`). `stdin`: a file to read standard input
    /// from (default /dev/null).
    init(_ executable: String, _ args: [String], env: [String: String] = [:], log: String, errLog: String? = nil,
         stdin: String = "/dev/null") throws {
        logPath = log
        var environment = ProcessInfo.processInfo.environment
        environment.merge(env) { $1 }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        if let errLog {
            posix_spawn_file_actions_addopen(&actions, 2, errLog, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        let argv = ([executable] + args).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        // The test runner's threads block and ignore signals; a child must start with none blocked and the
        // default dispositions, or SIGTERM would never reach a `loa tail -f` (and a killed test would leak it).
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attr, argv, envp)
        guard rc == 0 else { throw HarnessError(message: "cannot start \(executable): \(String(cString: strerror(rc)))") }
        pid = child
    }

    var isRunning: Bool { reap(block: false) == nil }

    func signal(_ s: Int32) { if isRunning { kill(pid, s) } }

    /// Waits for exit up to `seconds`; returns the exit status (128+signal when killed) or nil.
    func wait(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let s = reap(block: false) { return s }
            usleep(20_000)
        }
        return reap(block: false)
    }

    private func reap(block: Bool) -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        let r = waitpid(pid, &raw, block ? 0 : WNOHANG)
        guard r == pid else { return nil }
        let termSig = raw & 0x7f
        status = termSig == 0 ? (raw >> 8) & 0xff : 128 + termSig
        return status
    }

    func stop() {
        signal(SIGTERM)
        if wait(seconds: 30) == nil { signal(SIGKILL); _ = wait(seconds: 5) }
    }

    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// Runs a command to completion and returns (status, stdout+stderr); killed after `timeout` seconds.
@discardableResult
func run(_ executable: String, _ args: [String], env: [String: String] = [:], timeout: Double = 120, stdin: String? = nil) throws -> (status: Int32, output: String) {
    let log = NSTemporaryDirectory() + "loa-run-" + UUID().uuidString + ".log"
    defer { unlink(log) }
    var input = "/dev/null"
    if let stdin {
        input = NSTemporaryDirectory() + "loa-stdin-" + UUID().uuidString
        _ = FileManager.default.createFile(atPath: input, contents: Data(stdin.utf8), attributes: [.posixPermissions: 0o600])
    }
    defer { if stdin != nil { unlink(input) } }
    let child = try Child(executable, args, env: env, log: log, stdin: input)
    guard let status = child.wait(seconds: timeout) else {
        child.signal(SIGKILL)
        _ = child.wait(seconds: 5)
        throw HarnessError(message: "\(executable) \(args.joined(separator: " ")) did not finish in \(timeout) s:\n\(child.output)")
    }
    return (status, child.output)
}

/// Runs a command to completion and returns its status, stdout and stderr apart; killed after `timeout` seconds.
func runSplit(_ executable: String, _ args: [String], env: [String: String] = [:],
              timeout: Double = 120) throws -> (status: Int32, stdout: String, stderr: String) {
    let base = NSTemporaryDirectory() + "loa-run-" + UUID().uuidString
    defer { unlink(base + ".out"); unlink(base + ".err") }
    let child = try Child(executable, args, env: env, log: base + ".out", errLog: base + ".err")
    guard let status = child.wait(seconds: timeout) else {
        child.signal(SIGKILL)
        _ = child.wait(seconds: 5)
        throw HarnessError(message: "\(executable) \(args.joined(separator: " ")) did not finish in \(timeout) s")
    }
    return (status, child.output, (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
}

/// A free TCP port on 127.0.0.1, from the kernel.
/// A loopback port free now, from below the kernel's ephemeral range (32768-60999 on Linux): a port the kernel
/// hands out for `bind(0)` is also one it hands out as the local port of an outgoing connection, and with hundreds
/// of connections open in a parallel run, one of them took a daemon's port between the pick and the daemon's bind
/// ("Address already in use"). Ports are taken in turn from a process-wide counter (no two tests of this run get
/// the same one) that starts at an offset from the pid (runs side by side start apart), and each is checked by a bind.
func freePort() -> Int {
    while true {
        let port = PortCounter.next()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        close(fd)
        if ok { return port }
    }
}

private enum PortCounter {
    static let range = 15_000..<32_700
    private static let state = Mutex(Int(getpid()) * 7919 % 17_700)
    static func next() -> Int {
        state.withLock { n in
            n = (n + 1) % range.count
            return range.lowerBound + n
        }
    }
}

/// Polls `condition` until it is true or `seconds` pass; never sleeps to wait for a fixed state. The condition is
/// asked once more after the deadline: a test process that was itself held up (a loaded machine) must not report a
/// state as never reached when it simply did not look in time.
func poll(_ seconds: Double, every: Double = 0.1, _ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(Int(every * 1000)))
    }
    if try await condition() { return }
    throw PollTimeout(what: what, seconds: seconds)
}

/// The integration tests' own threads. Their helpers block (`run`, `Child.wait`, `LoaDaemonProcess.stop`, the
/// `loa` CLI): a blocking call on Swift's cooperative pool, which has one thread per core (two here), stopped every
/// other test of the parallel run with it, and in CI fifteen tests then timed out together waiting for daemons
/// that were up. Every integration suite runs its tests on this wide pool instead (`@Suite(.ownThreads)`), where a
/// blocked test holds one of 64 threads and nothing else.
final class BlockingTestPool: TaskExecutor, @unchecked Sendable {
    static let shared = BlockingTestPool(threads: 64)

    private let ready = NSCondition()
    private var jobs: [UnownedJob] = []
    private var head = 0

    private init(threads: Int) {
        for i in 0..<threads {
            let thread = Thread { [unowned self] in
                Thread.current.name = "test-pool-\(i)"  // set on the thread itself: Linux names only the running thread
                self.work()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    private func work() {
        while true {
            ready.lock()
            while head == jobs.count { ready.wait() }
            let job = jobs[head]
            head += 1
            if head > 1024 && head * 2 > jobs.count { jobs.removeFirst(head); head = 0 }
            ready.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        ready.lock()
        jobs.append(job)
        ready.signal()
        ready.unlock()
    }
}

/// Runs each test of the suite it is put on with `BlockingTestPool` as its task executor.
struct OwnThreads: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func scopeProvider(for test: Test, testCase: Test.Case?) -> OwnThreads? { testCase == nil ? nil : self }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        try await withTaskExecutorPreference(BlockingTestPool.shared) { try await function() }
    }
}

extension Trait where Self == OwnThreads {
    static var ownThreads: OwnThreads { OwnThreads() }
}

struct PollTimeout: Error, CustomStringConvertible {
    var what: String
    var seconds: Double
    var description: String { "timed out after \(seconds) s waiting for \(what)" }
}

/// A real Kannel (bearerbox + smsbox + an SMSC) on 127.0.0.1, started by the harness script: Kannel's fakesmsc,
/// or with `smpp` the scriptable SMPP SMSC `kannel/smpp-smsc.py` behind `smsc = smpp`.
final class Kannel: @unchecked Sendable {
    let dir: String
    let vars: [String: String]

    /// The SMPP mode's options (`kannel-harness.sh start DIR --smpp …`).
    struct SMPP {
        /// The SMSC accepts at most this many submit_sm per second and holds the rest (0: no limit).
        var pace: Double = 0
        /// Kannel's own `throughput` for the link (nil: none).
        var throughput: Double?
        /// The SMSC's outcome rules by destination (see smpp-smsc.py's header), written to a file.
        var rules: String?
        /// Seconds from the SMSC's acceptance to each receipt.
        var reportDelay: Double = 0.3
    }

    init(dir: String, smpp: SMPP? = nil) throws {
        self.dir = dir
        var args = [Env.harness, "start", dir]
        if let smpp {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            args += ["--smpp", "--pace", "\(smpp.pace)", "--report-delay", "\(smpp.reportDelay)"]
            if let t = smpp.throughput { args += ["--throughput", "\(t)"] }
            if let rules = smpp.rules {
                let path = dir + "/smsc-rules.txt"
                try rules.write(toFile: path, atomically: true, encoding: .utf8)
                args += ["--rules", path]
            }
        }
        let r = try run("/bin/bash", args, timeout: 90)
        guard r.status == 0 else { throw HarnessError(message: "kannel-harness start failed (\(r.status)):\n\(r.output)") }
        var v: [String: String] = [:]
        for line in r.output.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "="), line.hasPrefix("KANNEL_") else { continue }
            v[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        vars = v
    }

    func stop() { _ = try? run("/bin/bash", [Env.harness, "stop", dir], timeout: 60) }

    var sendsmsURL: String { vars["KANNEL_SENDSMS_URL"] ?? "" }
    var username: String { vars["KANNEL_USERNAME"] ?? "" }
    var password: String { vars["KANNEL_PASSWORD"] ?? "" }
    var smscLog: String { vars["KANNEL_SMSC_LOG"] ?? "" }
}

struct HarnessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// A running `loa daemon` with its config in a work dir.
final class LoaDaemonProcess: @unchecked Sendable {
    let work: WorkDir
    /// The API's port; chosen again if another process took it between ``freePort()`` and the daemon's bind.
    private(set) var port: Int
    /// The port was given by the test (a cluster's nodes name each other's): never chosen again.
    private let portGiven: Bool
    let token = "it-token-" + String(UUID().uuidString.prefix(12))
    let receiptSecret = "it-receipt-" + String(UUID().uuidString.prefix(12))
    var child: Child?
    let engine: CurlEngine
    var env: [String: String] {
        ["LOA_API_TOKEN": token, "LOA_KANNEL_PASSWORD": kannelPassword, "LOA_RECEIPT_SECRET": receiptSecret, "LOA_SIM_TOKEN": kannelPassword,
         "LOA_SIM_RECEIPT_SECRET": receiptSecret].merging(Self.deadProxies) { $1 }.merging(extraEnv) { $1 }
    }
    /// More environment for the daemon and the CLI (a provider profile's secrets).
    var extraEnv: [String: String] = [:]
    /// Proxy variables that libcurl would honour, pointing at a port where nothing listens (the discard port), with
    /// no exceptions: every daemon and CLI of the integration tests runs with them, and works only because Loa
    /// goes where its config says (a carrier's `proxy`, else directly), never where the environment says.
    static let deadProxies = ["http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "all_proxy": "http://127.0.0.1:9",
                              "ALL_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""]
    let kannelPassword: String

    convenience init(work: WorkDir, carrierURL: String, username: String, password: String, rate: Double = 500, maxInFlight: Int = 32,
         extraConfig: String = "", method: String = "GET", listen: String = "") throws {
        try self.init(work: work, password: password, carriers: """
            [{
                "name": "kannel", "kind": "kannel", "url": "\(carrierURL)", "username": "\(username)",
                "password": { "env": "LOA_KANNEL_PASSWORD" }, "receipt_secret": { "env": "LOA_RECEIPT_SECRET" },
                "rate": \(rate), "max_in_flight": \(maxInFlight), "timeout_seconds": 10, "method": "\(method)"
            }]
            """, defaultCarrier: "kannel", extraConfig: extraConfig, listen: listen)
    }

    /// A daemon with the carriers given as a JSON array (secrets: `LOA_KANNEL_PASSWORD`, `LOA_RECEIPT_SECRET`,
    /// `LOA_SIM_TOKEN` = `password`).
    /// `listen`: more keys for the `listen` object (`"per_client_limit": 8`).
    /// `approval`: two-person approval, off unless asked for. Loa's default is on, but the tests written before it
    /// submit with the one admin token and expect the campaign to send; the approval tests (AccessTests) turn it on.
    init(work: WorkDir, password: String = "sim-password", carriers: String, defaultCarrier: String, extraConfig: String = "",
         retry: String = #"{ "max_attempts": 4, "base_seconds": 0.2, "max_seconds": 2 }"#, networks: String = "{}", listen: String = "",
         approval: Bool = false, port: Int? = nil) throws {
        self.work = work
        self.port = port ?? freePort()
        self.portGiven = port != nil
        self.kannelPassword = password
        engine = try CurlEngine(maxConnectionsPerHost: 8)
        work.write("loa.json", """
            {
              "data_dir": "data",
              "listen": { "address": "127.0.0.1", "port": \(self.port)\(listen.isEmpty ? "" : ", " + listen) },
              "api_token": { "env": "LOA_API_TOKEN" },
              "drain_seconds": 10,
              "log_level": "info",
              "retry": \(retry),
              "carriers": \(carriers),
              "routing": { "default": "\(defaultCarrier)", "networks": \(networks) },
              "approval": { "required": \(approval) },
              \(extraConfig)
            }
            """)
    }

    var configPath: String { work.file("loa.json") }
    var base: String { "http://127.0.0.1:\(port)" }

    func start() async throws {
        // A store this test process opened and closed (to write what an older version would have) can still be
        // locked for a moment after its close: a child another test spawns at that instant holds a copy of the lock's
        // descriptor until its exec, and the daemon then finds the data directory in use by this very process. That
        // one refusal is retried, within the same deadline; any other exit fails at once.
        let ours = "in use by another loa process (pid \(getpid()))"
        let deadline = Date().addingTimeInterval(20)
        while true {
            child = try Child(Env.loaBinary, ["daemon", "--config", configPath], env: env, log: work.file("daemon.log"))
            do {
                try await poll(deadline.timeIntervalSinceNow, "the daemon's /healthz") { [self] in
                    guard child?.isRunning == true else { throw HarnessError(message: "loa daemon exited:\n\(child?.output ?? "")") }
                    return (try? await engine.perform(HTTPRequest(url: base + "/healthz", timeout: 2)).status) == 200
                }
                return
            } catch let e as HarnessError where e.message.contains(ours) && Date() < deadline {
                continue
            } catch let e as HarnessError where e.message.contains("port \(port): Address already in use") && !portGiven && Date() < deadline {
                // Another process (a gateway simulator or Kannel of a test running beside this one) took the port that
                // freePort() had found free: the same config on another port.
                let old = port
                port = freePort()
                let text = try String(contentsOfFile: configPath, encoding: .utf8)
                try text.replacingOccurrences(of: "\"port\": \(old)", with: "\"port\": \(port)").write(toFile: configPath, atomically: true, encoding: .utf8)
                continue
            }
        }
    }

    /// The CLI as the admin (the config's api_token), or with `token` (LOA_TOKEN) as that token's user.
    func cli(_ args: [String], token: String? = nil, stdin: String? = nil) throws -> (status: Int32, output: String) {
        var e = env
        if let token { e["LOA_TOKEN"] = token }
        return try run(Env.loaBinary, args + ["--config", configPath], env: e, stdin: stdin)
    }

    func api(_ path: String, method: String = "GET", token: String? = nil, body: String? = nil) async throws -> HTTPResponse {
        var headers = [HTTPHeader("Authorization", "Bearer \(token ?? self.token)")]
        if body != nil { headers.append(HTTPHeader("Content-Type", "application/json")) }
        return try await engine.perform(HTTPRequest(method: method, url: base + path, headers: headers, body: Array((body ?? "").utf8), timeout: 10))
    }

    func campaign(_ id: String) async throws -> [String: Any] {
        let r = try await api("/api/v1/campaigns/\(id)")
        return (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:]
    }

    /// What an operator would look at when the daemon seems stuck: the campaign, the carriers' state and the end
    /// of the daemon's own log. For a test's failure message.
    func diagnosis(campaign id: String, logLines: Int = 40) async -> String {
        let campaign = (try? await api("/api/v1/campaigns/\(id)").bodyText) ?? "(campaign not read)"
        let carriers = (try? await api("/api/v1/carriers").bodyText) ?? "(carriers not read)"
        let log = (try? String(contentsOfFile: work.file("daemon.log"), encoding: .utf8)) ?? ""
        let tail = log.split(separator: "\n").suffix(logLines).joined(separator: "\n")
        return "campaign: \(campaign)\ncarriers: \(carriers)\ndaemon log (last \(logLines) lines):\n\(tail)"
    }

    func logEvents() -> [[String: Any]] {
        let text = (try? String(contentsOfFile: work.file("data/delivery.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// SIGTERM and the exit status.
    func stop() -> Int32? {
        child?.signal(SIGTERM)
        let status = child?.wait(seconds: 30)
        if status == nil { child?.signal(SIGKILL); _ = child?.wait(seconds: 5) }
        return status
    }

    deinit {
        if child?.isRunning == true { child?.signal(SIGKILL) }
        engine.shutdown()
    }
}

/// `loa gateway-sim` started by a test on a free port: the carrier side of the fault, crash and adapter tests.
/// Holds a loopback TCP port while its server is down: a socket bound to it that does not listen, so a connection
/// is refused (as from a dead gateway) and no other test's server can take the port before the gateway comes back
/// on it. Without it, a port freed for a minute could be given to another test's server running in parallel, and
/// requests meant for the dead gateway would reach that server.
final class PortHold {
    private var fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError(message: "socket: errno \(errno)") }
        // The gateway's connections in TIME_WAIT would refuse the bind otherwise. (A server that sets SO_REUSEADDR
        // too could still bind beside this socket; those that do not, cannot.)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw HarnessError(message: "cannot hold port \(port): errno \(e)")
        }
    }

    func release() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    deinit { release() }
}

final class GatewaySimProcess: @unchecked Sendable {
    let work: WorkDir
    let name: String
    let args: [String]
    let env: [String: String]
    var child: Child?
    private(set) var port = 0
    let engine: CurlEngine

    /// `args` are the fault flags (`--error-rate 0.3`, …); `env` the secrets (`LOA_SIM_TOKEN`, `LOA_SIM_PASSWORD`).
    /// The journal keeps counts across restarts.
    init(work: WorkDir, name: String = "sim", args: [String] = [], env: [String: String] = [:]) throws {
        self.work = work
        self.name = name
        self.args = args
        self.env = env
        engine = try CurlEngine(maxConnectionsPerHost: 4)
    }

    var journal: String { work.file("\(name).journal") }
    var base: String { "http://127.0.0.1:\(port)" }

    /// Starts (or restarts on the same port) and waits until it answers.
    func start() async throws {
        let ready = work.file("\(name).port")
        try? FileManager.default.removeItem(atPath: ready)
        var a = ["gateway-sim", "--port", "\(port)", "--ready-file", ready, "--journal", journal, "--exit-after", "900"]
        a += args
        child = try Child(Env.loaBinary, a, env: env, log: work.file("\(name).log"))
        try await poll(60, "the gateway simulator to listen") { [self] in
            guard child?.isRunning == true else { throw HarnessError(message: "gateway-sim exited:\n\(child?.output ?? "")") }
            guard let text = try? String(contentsOfFile: ready, encoding: .utf8), let p = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), p > 0 else { return false }
            port = p
            return (try? await engine.perform(HTTPRequest(url: base + "/sim/stats", timeout: 2)).status) == 200
        }
    }

    func stats() async throws -> [String: Any] {
        let r = try await engine.perform(HTTPRequest(url: base + "/sim/stats", timeout: 5))
        return (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:]
    }

    /// Accepted count per recipient (digits, `84…`).
    func accepted() async throws -> [String: Int] {
        let r = try await engine.perform(HTTPRequest(url: base + "/sim/accepted", timeout: 10))
        var out: [String: Int] = [:]
        for line in r.bodyText.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let n = Int(parts[1]) { out[String(parts[0]), default: 0] += n }
        }
        return out
    }

    func stop() {
        child?.signal(SIGTERM)
        if child?.wait(seconds: 10) == nil { child?.signal(SIGKILL); _ = child?.wait(seconds: 5) }
    }

    deinit {
        if child?.isRunning == true { child?.signal(SIGKILL) }
        engine.shutdown()
    }
}
