import Foundation

/// The flags of `loa gateway-sim`, parsed and checked. Every rate is a probability 0…1 drawn from the
/// seeded ``SimRandom``; every duration and size is bounded.
struct SimConfig: Sendable {
    var address = "127.0.0.1"
    var port = 13100
    /// nil: seeded from the clock (the seed is printed at start so a run can be repeated).
    var seed: UInt64?
    var username: String?
    var password: String?
    var token: String?
    var maxBatch = 1000
    var latencyMs = 0
    var latencyJitterMs = 0
    var errorRate = 0.0
    var errorStatus = 500
    var throttleRate = 0.0
    /// Requests a second the token bucket lets through (bucket size the same); 0 is no limit.
    var maxRate = 0.0
    /// Queue mode: messages passed on (to the handsets) per second, whatever the rate they are accepted at; 0: off
    /// (each message is passed on when accepted). See ``SimHandsetQueue``.
    var passOnRate = 0.0
    /// How a `--max-rate` refusal says when to come back: `retry-after` (seconds, rounded up), `x-rate-limit-reset`
    /// (a Unix time in seconds, SpeedSMS and GitHub style) or `ratelimit` (the IETF draft's `RateLimit` and
    /// `RateLimit-Policy` structured fields).
    var limitHeader = "retry-after"
    var timeoutRate = 0.0
    var hangSeconds = 30.0
    var resetRate = 0.0
    var resetAfterAccept = 0.5
    var deliveredRate = 0.95
    var receiptDelayMs = 100
    var receipts = true
    var receiptConcurrency = 32
    var receiptQueue = 100_000
    var receiptRetries = 3
    var receiptRetryMs = 1000
    /// At SIGTERM, how long to keep sending the receipts owed.
    var drainSeconds: Double = 5
    var intermediate = false
    /// `--failure-text`: the generic shape's undelivered error text (`{id}`, `{to}` filled in); nil: `001`.
    var failureText: String?
    var exitAfter: Double?
    var journal: String?
    var readyFile: String?
    var connections = 1024
    var statsEvery = 5.0

    struct Bad: Error, CustomStringConvertible { var description: String }

    init() {}

    /// Secrets never come from the command line, which every local user can read (`ps`, `/proc/PID/cmdline`):
    /// the password from `--password-file FILE` or `$LOA_SIM_PASSWORD`, the token from `--token-file FILE` or
    /// `$LOA_SIM_TOKEN` (a file wins; its content is trimmed). `--password` and `--token` are refused, naming these.
    init(_ args: [String], environment: [String: String] = ProcessInfo.processInfo.environment) throws(Bad) {
        var passwordFile: String?
        var tokenFile: String?
        var i = 0
        func value(_ name: String) throws(Bad) -> String {
            i += 1
            guard i < args.count else { throw Bad(description: "\(name) needs a value") }
            return args[i]
        }
        func int(_ name: String, _ range: ClosedRange<Int>) throws(Bad) -> Int {
            let v = try value(name)
            guard let n = Int(v), range.contains(n) else { throw Bad(description: "\(name) needs a whole number \(range.lowerBound)…\(range.upperBound), not '\(v)'") }
            return n
        }
        func number(_ name: String, _ range: ClosedRange<Double>) throws(Bad) -> Double {
            let v = try value(name)
            guard let n = Double(v), range.contains(n) else { throw Bad(description: "\(name) needs a number \(range.lowerBound)…\(range.upperBound), not '\(v)'") }
            return n
        }
        func rate(_ name: String) throws(Bad) -> Double { try number(name, 0...1) }
        while i < args.count {
            let a = args[i]
            switch a {
            case "--address": address = try value(a)
            case "--port": port = try int(a, 0...65535)
            case "--seed":
                let v = try value(a)
                guard let s = UInt64(v) else { throw Bad(description: "--seed needs a whole number ≥ 0, not '\(v)'") }
                seed = s
            case "--username": username = try value(a)
            case "--password", "--token":
                let name = a.dropFirst(2)
                throw Bad(description: "\(a) is refused: a secret on the command line is visible to every user (ps); "
                          + "use --\(name)-file FILE or LOA_SIM_\(name.uppercased())")
            case "--password-file": passwordFile = try value(a)
            case "--token-file": tokenFile = try value(a)
            case "--max-batch": maxBatch = try int(a, 1...100_000)
            case "--latency-ms": latencyMs = try int(a, 0...600_000)
            case "--latency-jitter-ms": latencyJitterMs = try int(a, 0...600_000)
            case "--error-rate": errorRate = try rate(a)
            case "--error-status": errorStatus = try int(a, 500...599)
            case "--throttle-rate": throttleRate = try rate(a)
            case "--max-rate": maxRate = try number(a, 0...10_000_000)
            case "--pass-on-rate": passOnRate = try number(a, 0...1_000_000)
            case "--limit-header":
                let v = try value(a)
                guard ["retry-after", "x-rate-limit-reset", "ratelimit"].contains(v) else {
                    throw Bad(description: "--limit-header needs retry-after, x-rate-limit-reset or ratelimit, not '\(v)'")
                }
                limitHeader = v
            case "--timeout-rate": timeoutRate = try rate(a)
            case "--hang-seconds": hangSeconds = try number(a, 0...3600)
            case "--reset-rate": resetRate = try rate(a)
            case "--reset-after-accept": resetAfterAccept = try rate(a)
            case "--delivered-rate": deliveredRate = try rate(a)
            case "--receipt-delay-ms": receiptDelayMs = try int(a, 0...3_600_000)
            case "--no-receipts": receipts = false
            case "--receipt-concurrency": receiptConcurrency = try int(a, 1...1024)
            case "--receipt-queue": receiptQueue = try int(a, 1...10_000_000)
            case "--receipt-retries": receiptRetries = try int(a, 0...100)
            case "--receipt-retry-ms": receiptRetryMs = try int(a, 0...600_000)
            case "--drain-seconds": drainSeconds = try number(a, 0...600)
            case "--intermediate": intermediate = true
            case "--failure-text": failureText = try value(a)
            case "--exit-after": exitAfter = try number(a, 0.001...31_536_000)
            case "--journal": journal = try value(a)
            case "--ready-file": readyFile = try value(a)
            case "--connections": connections = try int(a, 1...100_000)
            case "--stats-every": statsEvery = try number(a, 0.1...86_400)
            default: throw Bad(description: "unknown option \(a)")
            }
            i += 1
        }
        func secret(file: String?, env: String, flag: String) throws(Bad) -> String? {
            if let file {
                guard let d = FileManager.default.contents(atPath: file) else { throw Bad(description: "\(flag) \(file): cannot read") }
                let v = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard !v.isEmpty else { throw Bad(description: "\(flag) \(file): the file is empty") }
                return v
            }
            return environment[env].flatMap { $0.isEmpty ? nil : $0 }
        }
        token = try secret(file: tokenFile, env: "LOA_SIM_TOKEN", flag: "--token-file")
        if username != nil || passwordFile != nil {
            password = try secret(file: passwordFile, env: "LOA_SIM_PASSWORD", flag: "--password-file")
        }
        if (username == nil) != (password == nil) {
            throw Bad(description: "--username goes with a password (--password-file FILE or LOA_SIM_PASSWORD), and a password with --username")
        }
    }
}
