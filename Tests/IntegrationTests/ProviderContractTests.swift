import Foundation
import LoaCarriers
import Testing

/// A fake of a provider's public API (`Tests/Providers/fakes/provider_fake.py`, written from the provider's docs)
/// on a free port of 127.0.0.1, with its ledger of accepted messages and its counters.
final class ProviderFake: @unchecked Sendable {
    let port: Int
    let ledgerPath: String
    let child: Child
    let engine: CurlEngine
    static let script = Env.root + "/Tests/Providers/fakes/provider_fake.py"

    /// `credentials` in the provider's own form (twilio `sid:token`, vonage `key:secret`, …), passed in the
    /// environment; `args` the outcome and limit flags (`--reject`, `--receipt`, `--rate`, `--per`, `--callback-url`).
    init(work: WorkDir, provider: String, credentials: String, port: Int = freePort(), args: [String] = []) async throws {
        self.port = port
        ledgerPath = work.file("\(provider).ledger")
        engine = try CurlEngine()
        child = try Child("/usr/bin/python3", [Self.script, "--provider", provider, "--port", "\(port)", "--ledger", ledgerPath,
                                               "--lifetime", "300", "--receipt-delay", "0.05"] + args,
                          env: ["FAKE_PROVIDER_CREDENTIALS": credentials], log: work.file("\(provider)-fake.log"))
        try await poll(10, "the \(provider) fake") { [self] in
            guard child.isRunning else { throw HarnessError(message: "fake exited: \(child.output)") }
            return (try? await engine.perform(HTTPRequest(url: base + "/fake/stats", timeout: 2)).status) == 200
        }
    }

    var base: String { "http://127.0.0.1:\(port)" }

    func stats() async throws -> [String: Any] {
        let r = try await engine.perform(HTTPRequest(url: base + "/fake/stats", timeout: 5))
        return (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:]
    }

    /// Every message the fake accepted, in order.
    func ledger() -> [[String: Any]] {
        let text = (try? String(contentsOfFile: ledgerPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Accepted messages per number (E.164 digits).
    func sendsPerNumber() -> [String: Int] {
        var out: [String: Int] = [:]
        for e in ledger() { out[e["to"] as? String ?? "", default: 0] += 1 }
        return out
    }

    /// Recipients per second the fake accepted: all of them over the time from the first request accepted to the
    /// last, plus one request `interval` (the last request's own share of the time, 1 / the request limit).
    func acceptedPerSecond(interval: Double) -> Double {
        let times = ledger().compactMap { $0["t"] as? Double }
        guard let first = times.min(), let last = times.max() else { return 0 }
        return Double(times.count) / (last - first + interval)
    }

    func stop() {
        child.signal(SIGTERM)
        if child.wait(seconds: 10) == nil { child.signal(SIGKILL); _ = child.wait(seconds: 5) }
        engine.shutdown()
    }
}

/// The shipped profiles of `Config/carriers/`, used as shipped through a carrier entry's `profile` key.
enum Profiles {
    static let dir = Env.root + "/Config/carriers"

    static func object(_ file: String) throws -> [(String, JSONValue)] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + file))
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = true
        guard case .object(let members) = try decoder.decode(JSONValue.self, from: data) else { throw HarnessError(message: "\(file): not an object") }
        return members
    }

    static func string(_ file: String, _ key: String) throws -> String {
        guard case .string(let s)? = try object(file).first(where: { $0.0 == key })?.1 else { throw HarnessError(message: "\(file): no \(key)") }
        return s
    }

    /// JSON text of a value (for an entry's keys).
    static func text(_ v: JSONValue) -> String {
        switch v {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .number(let n): n
        case .string(let s): quote(s)
        case .array(let items): "[" + items.map(text).joined(separator: ",") + "]"
        case .object(let members): "{" + members.map { quote($0.0) + ":" + text($0.1) }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        String(decoding: try! JSONEncoder().encode(s), as: UTF8.self)
    }

    /// The environment variables the profile's secrets name.
    static func envNames(_ file: String) throws -> [String] {
        let text = try String(contentsOfFile: dir + "/" + file, encoding: .utf8)
        return text.matches(of: /"env":\s*"([A-Z0-9_]+)"/).map { String($0.1) }
    }

    /// A carrier entry that loads `file` as shipped and points every URL on the provider's host at `base` (the
    /// entry replaces only those top-level keys), plus `overrides` (`"rate": 5`).
    static func entry(_ file: String, base: String, overrides: [String: String] = [:]) throws -> String {
        let url = try #require(URLComponents(string: try string(file, "url")))
        // With its port, if any (Jasmin's profile points at 127.0.0.1:1401).
        let origin = "\(url.scheme ?? "https")://\(url.host ?? "")" + (url.port.map { ":\($0)" } ?? "")
        var members = ["\"profile\": \"\(dir)/\(file)\""]
        for (key, value) in try object(file) where overrides[key] == nil {
            let json = text(value).replacingOccurrences(of: #"\/"#, with: "/")
            if json.contains(origin) { members.append(quote(key) + ": " + json.replacingOccurrences(of: origin, with: base)) }
        }
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) { members.append("\"\(key)\": \(value)") }
        return "{" + members.joined(separator: ", ") + "}"
    }
}

/// A campaign of given numbers (E.164 digits) and one text, written for the daemon's `campaign submit`.
enum ProviderCampaign {
    static func write(_ work: WorkDir, id: String, numbers: [String], text: String, sender: String = "LOA") {
        work.write("campaign/segment.csv", "phone\n" + numbers.map { "+\($0)\n" }.joined())
        work.write("campaign/text.txt", text + "\n")
        work.write("campaign/campaign.json", """
            {
              "id": "\(id)", "sender": "\(sender)", "templates": ["text.txt"], "segments": ["segment.csv"],
              "start": "2026-01-01T07:00:00+07:00", "deadline": "2099-01-01T22:00:00+07:00", "windows": ["00:00-24:00"],
            }
            """)
    }

    /// n Viettel numbers 8496xxxxxxx, distinct.
    static func numbers(_ n: Int, from: Int = 0) -> [String] { (0..<n).map { "8496\(String(format: "%07d", 1_000_000 + from + $0))" } }

    /// Each message by number: state, reason, attempts, gateway id.
    static func messages(_ loa: LoaDaemonProcess, _ id: String) async throws -> [String: (state: String, reason: String, attempts: Int, gatewayID: String)] {
        var out: [String: (String, String, Int, String)] = [:]
        var after = 0
        for _ in 0..<100 {
            let r = try await loa.api("/api/v1/campaigns/\(id)/messages?after=\(after)&limit=5000")
            let page = (try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]) ?? [:]
            // Each row: [id, phone, carrier, state, reason, attempts, updated_at, source, line, group, gateway_id].
            let rows = page["rows"] as? [[Any]] ?? []
            for m in rows where m.count > 10 {
                out[(m[1] as? String ?? "").filter(\.isNumber)] = (m[3] as? String ?? "", m[4] as? String ?? "", m[5] as? Int ?? 0, m[10] as? String ?? "")
            }
            guard let next = page["next"] as? Int, !rows.isEmpty else { break }
            after = next
        }
        return out
    }
}

/// One provider's contract run: the fake, a daemon whose only carrier is the shipped profile, a campaign.
struct ProviderRun {
    let work: WorkDir
    let fake: ProviderFake
    let loa: LoaDaemonProcess

    /// `secrets`: the profile's environment variables (the receipt secret is added). `fakeArgs` may use the
    /// daemon (SpeedSMS: the callback URL set in the account is `<loa>/dlr/speedsms?k=<receipt secret>`).
    static func start(_ name: String, provider: String, profile: String, credentials: String, secrets: [String: String],
                      fakeArgs: [String] = [], accountCallback: Bool = false, overrides: [String: String] = [:],
                      retry: String = #"{ "max_attempts": 4, "base_seconds": 0.2, "max_seconds": 2 }"#) async throws -> ProviderRun {
        let work = WorkDir("provider-\(name)")
        let fakePort = freePort()
        let carrierName = try Profiles.string(profile, "name")
        let entry = try Profiles.entry(profile, base: "http://127.0.0.1:\(fakePort)", overrides: overrides)
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(entry)]", defaultCarrier: carrierName,
                                       extraConfig: #""contact_policy": {"max_messages": 0},"#, retry: retry)
        var args = fakeArgs
        if accountCallback { args += ["--callback-url", "\(loa.base)/dlr/\(carrierName)?k=\(loa.receiptSecret)"] }
        let fake = try await ProviderFake(work: work, provider: provider, credentials: credentials, port: fakePort, args: args)
        var env = secrets
        for n in try Profiles.envNames(profile) where n.hasSuffix("RECEIPT_SECRET") { env[n] = loa.receiptSecret }
        loa.extraEnv = env
        try await loa.start()
        return ProviderRun(work: work, fake: fake, loa: loa)
    }

    func submit(id: String, numbers: [String], text: String) throws {
        ProviderCampaign.write(work, id: id, numbers: numbers, text: text)
        let r = try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")])
        try #require(r.status == 0, "submit: \(r.output)")
    }

    func stop() {
        _ = loa.stop()
        fake.stop()
    }
}

/// Each shipped provider profile against a fake of the provider written from its public documentation: accepted
/// messages get their ids, documented errors end permanent or temporary as documented, receipts settle every
/// message, nothing is sent twice, and throttling at the documented limit keeps pace.
@Suite(.ownThreads, .serialized) struct ProviderContractTests {
    let fastRetry = #"{ "max_attempts": 3, "base_seconds": 0.1, "max_seconds": 0.5 }"#

    /// Every shipped profile passes `loa check` when used as shipped (`"profile": "carriers/<file>"`).
    @Test func loaCheckAcceptsEveryShippedProfile() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Profiles.dir).filter { $0.hasSuffix(".json5") }.sorted()
        #expect(files.count >= 7, "\(files)")
        for file in files {
            let work = WorkDir("profile-check-\(file)")
            let name = try Profiles.string(file, "name")
            // esms-bulk moves its remainder to esms-cc: both are configured, as its header says.
            let with = file == "esms-bulk.json5" ? ["esms-cc.json5"] : []
            let entries = ([file] + with).map { #"{"profile": "\#(Profiles.dir)/\#($0)"}"# }.joined(separator: ", ")
            let loa = try LoaDaemonProcess(work: work, carriers: "[\(entries)]", defaultCarrier: name)
            var env: [String: String] = [:]
            for f in [file] + with { for n in try Profiles.envNames(f) { env[n] = "secret-value-for-\(n.lowercased())" } }
            loa.extraEnv = env
            let r = try loa.cli(["check"])
            #expect(r.status == 0, "\(file): \(r.output)")
            #expect(r.output.contains("ok"), "\(file): \(r.output)")
        }
    }

    /// A profile's problem is named; an entry's own keys replace the profile's.
    @Test func aProfileEntryIsCheckedAndItsKeysReplaceTheProfiles() throws {
        let work = WorkDir("profile-override")
        let bad = try LoaDaemonProcess(work: work, carriers: #"[{"profile": "\#(Profiles.dir)/twilio.json5", "rate": -1}]"#, defaultCarrier: "twilio")
        bad.extraEnv = ["LOA_TWILIO_ACCOUNT_SID": "AC1", "LOA_TWILIO_AUTH_TOKEN": "t", "LOA_TWILIO_RECEIPT_SECRET": "0123456789abcdef0"]
        let r = try bad.cli(["check"])
        #expect(r.status != 0 && r.output.contains("carriers.0.rate: must be > 0"), "\(r.output)")
        let missing = try LoaDaemonProcess(work: WorkDir("profile-missing"), carriers: #"[{"profile": "carriers/nope.json5", "name": "x"}]"#, defaultCarrier: "x")
        let m = try missing.cli(["check"])
        #expect(m.status != 0 && m.output.contains("carriers.0.profile: cannot use profile"), "\(m.output)")
    }

    // MARK: Twilio

    static let twilioSecrets = ["LOA_TWILIO_ACCOUNT_SID": "ACfake0001", "LOA_TWILIO_AUTH_TOKEN": "twilio-token-0001"]

    @Test(.timeLimit(.minutes(2))) func twilio() async throws {
        let numbers = ProviderCampaign.numbers(24)
        let invalid = numbers[0], unsubscribed = numbers[1], undelivered = numbers[2], failed = numbers[3]
        let run = try await ProviderRun.start("twilio", provider: "twilio", profile: "twilio.json5", credentials: "ACfake0001:twilio-token-0001",
                                              secrets: Self.twilioSecrets,
                                              fakeArgs: ["--reject", "\(invalid)=21211", "--reject", "\(unsubscribed)=21610",
                                                         "--receipt", "\(undelivered)=undelivered", "--receipt", "\(failed)=failed"],
                                              overrides: ["rate": "200"])
        defer { run.stop() }
        try run.submit(id: "it-twilio", numbers: numbers, text: "Loa contract test")
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-twilio", n: numbers.count, seconds: 60)
        #expect(states["delivered"] == 20 && states["failed"] == 4, "\(states)")
        let m = try await ProviderCampaign.messages(run.loa, "it-twilio")
        let ledger = run.fake.ledger()
        // Every accepted message carries Twilio's sid as its gateway id.
        let sids = Dictionary(ledger.map { ($0["to"] as? String ?? "", $0["id"] as? String ?? "") }, uniquingKeysWith: { $1 })
        for n in numbers where ![invalid, unsubscribed].contains(n) {
            #expect(m[n]?.gatewayID == "\(sids[n] ?? "?"):\(n)" && sids[n]?.hasPrefix("SM") == true, "\(n): \(String(describing: m[n]))")
        }
        // 21211 and 21610 are permanent at the first attempt; the receipts' undelivered and failed end failed.
        for n in [invalid, unsubscribed] { #expect(m[n]?.state == "failed" && m[n]?.attempts == 1, "\(n): \(String(describing: m[n]))") }
        #expect(m[invalid]?.reason.contains("not a valid phone number") == true, "\(String(describing: m[invalid]))")
        for n in [undelivered, failed] { #expect(m[n]?.state == "failed", "\(n): \(String(describing: m[n]))") }
        #expect(run.fake.sendsPerNumber().values.allSatisfy { $0 == 1 } && run.fake.sendsPerNumber().count == 22)
        // ValidityPeriod: the time left to the deadline (years away here), clamped to Twilio's 36,000 s.
        #expect(ledger.allSatisfy { $0["validity"] as? String == "36000" }, "\(ledger.filter { $0["validity"] as? String != "36000" })")
    }

    /// At the documented answer to too many requests (429, code 20429), a profile at the sender's rate keeps pace:
    /// the fake allows 10 requests a second, Loa's rate is 10 parts a second.
    @Test(.timeLimit(.minutes(2))) func twilioKeepsPaceAtTheRequestLimit() async throws {
        let n = 150
        let run = try await ProviderRun.start("twilio-pace", provider: "twilio", profile: "twilio.json5", credentials: "ACfake0001:twilio-token-0001",
                                              secrets: Self.twilioSecrets, fakeArgs: ["--rate", "10", "--per", "1"], overrides: ["rate": "10"])
        defer { run.stop() }
        try run.submit(id: "it-twilio-pace", numbers: ProviderCampaign.numbers(n), text: "Loa pace test")
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-twilio-pace", n: n, seconds: 90)
        #expect(states["delivered"] == n, "\(states)")
        let pace = run.fake.acceptedPerSecond(interval: 0.1)
        #expect(abs(pace - 10) <= 1, "recipients/s \(pace), limit 10")
        #expect(run.fake.sendsPerNumber().values.allSatisfy { $0 == 1 })
    }

    // MARK: Infobip

    static let infobipSecrets = ["LOA_INFOBIP_API_KEY": "infobip-key-0001"]

    @Test(.timeLimit(.minutes(2))) func infobip() async throws {
        let numbers = ProviderCampaign.numbers(60)
        let rejected = numbers[0], undeliverable = numbers[1], expired = numbers[2]
        let run = try await ProviderRun.start("infobip", provider: "infobip", profile: "infobip.json5", credentials: "infobip-key-0001",
                                              secrets: Self.infobipSecrets,
                                              fakeArgs: ["--reject", "\(rejected)=REJECTED_DESTINATION", "--receipt", "\(undeliverable)=undeliverable",
                                                         "--receipt", "\(expired)=expired"])
        defer { run.stop() }
        try run.submit(id: "it-infobip", numbers: numbers, text: "Loa contract test")
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-infobip", n: numbers.count, seconds: 60)
        #expect(states["delivered"] == 57 && states["expired"] == 1, "\(states)")
        let m = try await ProviderCampaign.messages(run.loa, "it-infobip")
        #expect(m[rejected]?.state == "failed" && m[rejected]?.attempts == 1, "\(String(describing: m[rejected]))")
        #expect(m[undeliverable]?.state == "failed" && m[expired]?.state == "expired", "\(String(describing: m[undeliverable])) \(String(describing: m[expired]))")
        let ledger = run.fake.ledger()
        let ids = Dictionary(ledger.map { ($0["to"] as? String ?? "", $0["id"] as? String ?? "") }, uniquingKeysWith: { $1 })
        // Each destination's own messageId from the answer, matched by number.
        for n in numbers.dropFirst(3) { #expect(m[n]?.gatewayID == ids[n] && ids[n]?.hasPrefix("M") == true, "\(n): \(String(describing: m[n]))") }
        // The validity: the minutes left to the deadline (years away here), which Infobip caps at 48 h.
        #expect(ledger.allSatisfy { $0["validity"] as? Int == 2880 }, "\(ledger.first ?? [:])")
        #expect(run.fake.sendsPerNumber().count == 59 && run.fake.sendsPerNumber().values.allSatisfy { $0 == 1 })
        // Several destinations per request.
        let sizes = try await run.fake.stats()["batch_sizes"] as? [Int] ?? []
        #expect(sizes.count < 30, "batches \(sizes)")
    }

    // MARK: Vonage

    static let vonageSecrets = ["LOA_VONAGE_API_KEY": "vkey0001", "LOA_VONAGE_API_SECRET": "vsecret0001"]

    @Test(.timeLimit(.minutes(2))) func vonage() async throws {
        let numbers = ProviderCampaign.numbers(20)
        let barred = numbers[0], failed = numbers[1], expired = numbers[2]
        let run = try await ProviderRun.start("vonage", provider: "vonage", profile: "vonage.json5", credentials: "vkey0001:vsecret0001",
                                              secrets: Self.vonageSecrets,
                                              fakeArgs: ["--reject", "\(barred)=7", "--receipt", "\(failed)=failed", "--receipt", "\(expired)=expired"],
                                              overrides: ["rate": "200"])
        defer { run.stop() }
        try run.submit(id: "it-vonage", numbers: numbers, text: "Kính gửi quý khách: Loa contract test, một tin nhắn dài hơn bảy mươi ký tự để có hai phần")
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-vonage", n: numbers.count, seconds: 60)
        #expect(states["delivered"] == 17 && states["expired"] == 1, "\(states)")
        let m = try await ProviderCampaign.messages(run.loa, "it-vonage")
        #expect(m[barred]?.state == "failed" && m[barred]?.attempts == 1, "\(String(describing: m[barred]))")
        #expect(m[failed]?.state == "failed" && m[expired]?.state == "expired", "\(String(describing: m[failed])) \(String(describing: m[expired]))")
        let ledger = run.fake.ledger()
        let ids = Dictionary(ledger.map { ($0["to"] as? String ?? "", $0["id"] as? String ?? "") }, uniquingKeysWith: { $1 })
        // The gateway id is the first part's message-id (a 2-part text: two ids per message in the answer).
        for n in numbers.dropFirst() { #expect(m[n]?.gatewayID == ids[n], "\(n): \(String(describing: m[n]))") }
        #expect(ledger.allSatisfy { ($0["part_ids"] as? [String])?.count == 2 }, "\(ledger.first ?? [:])")
        // A Vietnamese text is sent as type=unicode: never garbled.
        #expect(ledger.allSatisfy { $0["encoding_mismatch"] as? Bool == false && $0["encoding"] as? String == "ucs2" })
        // ttl: the time left to the deadline (years away here), clamped to Vonage's 7 days, in milliseconds.
        #expect(ledger.allSatisfy { $0["validity"] as? String == "604800000" }, "\(ledger.first ?? [:])")
        #expect(run.fake.sendsPerNumber().count == 19 && run.fake.sendsPerNumber().values.allSatisfy { $0 == 1 })
    }

    /// Vonage's throttling is status "1" in an HTTP 200 answer; at the account's limit Loa keeps pace.
    @Test(.timeLimit(.minutes(2))) func vonageKeepsPaceAtTheRequestLimit() async throws {
        let n = 80
        let run = try await ProviderRun.start("vonage-pace", provider: "vonage", profile: "vonage.json5", credentials: "vkey0001:vsecret0001",
                                              secrets: Self.vonageSecrets, fakeArgs: ["--rate", "8", "--per", "1"], overrides: ["rate": "8"])
        defer { run.stop() }
        try run.submit(id: "it-vonage-pace", numbers: ProviderCampaign.numbers(n), text: "Loa pace test")
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-vonage-pace", n: n, seconds: 90)
        #expect(states["delivered"] == n, "\(states)")
        let pace = run.fake.acceptedPerSecond(interval: 1.0 / 8)
        #expect(abs(pace - 8) <= 0.8, "recipients/s \(pace), limit 8")
        // A GSM-7 text goes as type=text.
        #expect(run.fake.ledger().allSatisfy { $0["encoding"] as? String == "gsm7" })
    }

    // MARK: eSMS customer care

    static let esmsSecrets = ["LOA_ESMS_API_KEY": "esms-api-key", "LOA_ESMS_SECRET_KEY": "esms-secret-key"]

    @Test(.timeLimit(.minutes(2))) func esmsCustomerCare() async throws {
        let numbers = ProviderCampaign.numbers(20)
        let blocked = numbers[0], failed = numbers[1]
        let run = try await ProviderRun.start("esms-cc", provider: "esms-cc", profile: "esms-cc.json5", credentials: "esms-api-key:esms-secret-key",
                                              secrets: Self.esmsSecrets,
                                              fakeArgs: ["--reject", "\(blocked)=99", "--receipt", "\(failed)=undelivered"], overrides: ["rate": "200"])
        defer { run.stop() }
        try run.submit(id: "it-esms-cc", numbers: numbers, text: "Kính gửi quý khách: Loa contract test, một tin nhắn dài hơn bảy mươi ký tự để có hai phần")
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-esms-cc", n: numbers.count, seconds: 60)
        #expect(states["delivered"] == 18, "\(states)")
        let m = try await ProviderCampaign.messages(run.loa, "it-esms-cc")
        #expect(m[blocked]?.state == "failed" && m[blocked]?.attempts == 1, "\(String(describing: m[blocked]))")
        // SendStatus=5 with SendFailed=2, SendSuccess=0 (eSMS's own sample) is a failure, not a delivery.
        #expect(m[failed]?.state == "failed", "\(String(describing: m[failed]))")
        let ledger = run.fake.ledger()
        #expect(ledger.allSatisfy { $0["parts"] as? Int == 2 && $0["encoding"] as? String == "ucs2" })
        let ids = Dictionary(ledger.map { ($0["to"] as? String ?? "", $0["id"] as? String ?? "") }, uniquingKeysWith: { $1 })
        for n in numbers.dropFirst() { #expect(m[n]?.gatewayID == "\(ids[n] ?? "?"):\(n)", "\(n): \(String(describing: m[n]))") }
        #expect(run.fake.sendsPerNumber().count == 19 && run.fake.sendsPerNumber().values.allSatisfy { $0 == 1 })
    }

    // MARK: SpeedSMS

    static let speedSecrets = ["LOA_SPEEDSMS_TOKEN": "speed-token-0001"]

    @Test(.timeLimit(.minutes(2))) func speedSMS() async throws {
        let numbers = ProviderCampaign.numbers(40)
        let invalid = numbers[0], undelivered = numbers[1]
        let run = try await ProviderRun.start("speedsms", provider: "speedsms", profile: "speedsms.json5", credentials: "speed-token-0001",
                                              secrets: Self.speedSecrets,
                                              fakeArgs: ["--reject", "\(invalid)=105", "--receipt", "\(undelivered)=undelivered"],
                                              accountCallback: true, overrides: ["rate": "500"])
        defer { run.stop() }
        try run.submit(id: "it-speedsms", numbers: numbers, text: "Loa contract test")
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-speedsms", n: numbers.count, seconds: 60)
        #expect(states["delivered"] == 38, "\(states)")
        let m = try await ProviderCampaign.messages(run.loa, "it-speedsms")
        #expect(m[invalid]?.state == "failed" && m[invalid]?.attempts == 1, "\(String(describing: m[invalid]))")
        #expect(m[undelivered]?.state == "failed", "\(String(describing: m[undelivered]))")
        let ids = Dictionary(run.fake.ledger().map { ($0["to"] as? String ?? "", $0["id"] as? String ?? "") }, uniquingKeysWith: { $1 })
        for n in numbers.dropFirst() { #expect(m[n]?.gatewayID == "\(ids[n] ?? "?"):\(n)", "\(n)") }
        #expect(run.fake.sendsPerNumber().count == 39 && run.fake.sendsPerNumber().values.allSatisfy { $0 == 1 })
    }

    // MARK: eSMS advertising

    /// 75 numbers go in one request (at least 30: `batch.min`); eSMS's one callback for the request (no number in
    /// it) is logged and answered by a poll of GetSmsReceiverStatus_get, whose items settle every number. A campaign
    /// of 10 (below the minimum) moves to the customer-care carrier.
    @Test(.timeLimit(.minutes(2))) func esmsAdvertising() async throws {
        let work = WorkDir("provider-esms-bulk")
        let numbers = ProviderCampaign.numbers(75)
        let failed = [numbers[0], numbers[1]]
        let bulkPort = freePort(), ccPort = freePort()
        let entries = [try Profiles.entry("esms-bulk.json5", base: "http://127.0.0.1:\(bulkPort)"),
                       try Profiles.entry("esms-cc.json5", base: "http://127.0.0.1:\(ccPort)")]
        let loa = try LoaDaemonProcess(work: work, carriers: "[\(entries.joined(separator: ", "))]", defaultCarrier: "esms-bulk",
                                       extraConfig: #""contact_policy": {"max_messages": 0},"#)
        let bulk = try await ProviderFake(work: work, provider: "esms-bulk", credentials: "esms-api-key:esms-secret-key", port: bulkPort,
                                          args: failed.flatMap { ["--receipt", "\($0)=undelivered"] })
        let cc = try await ProviderFake(work: work, provider: "esms-cc", credentials: "esms-api-key:esms-secret-key", port: ccPort)
        defer { bulk.stop(); cc.stop() }
        var env = Self.esmsSecrets
        env["LOA_ESMS_RECEIPT_SECRET"] = loa.receiptSecret
        loa.extraEnv = env
        try await loa.start()
        defer { _ = loa.stop() }
        let run = ProviderRun(work: work, fake: bulk, loa: loa)
        try run.submit(id: "it-esms-bulk", numbers: numbers, text: "Khuyen mai: Loa contract test")
        let states = try await SimCampaign.settle(loa, nil, id: "it-esms-bulk", n: numbers.count, seconds: 60)
        #expect(states["delivered"] == 73 && states["failed"] == 2, "\(states)")
        let stats = try await bulk.stats()
        #expect((stats["batch_sizes"] as? [Int] ?? []).allSatisfy { $0 >= 30 }, "\(stats)")
        #expect((stats["polls"] as? Int ?? 0) >= 1, "\(stats)")
        let m = try await ProviderCampaign.messages(loa, "it-esms-bulk")
        let smsid = try #require(bulk.ledger().first?["id"] as? String)
        for n in numbers { #expect(m[n]?.gatewayID == "\(smsid):\(n)", "\(n): \(String(describing: m[n]))") }
        #expect(loa.logEvents().contains { $0["event"] as? String == "request-receipt" })
        #expect(bulk.sendsPerNumber().count == 75 && bulk.sendsPerNumber().values.allSatisfy { $0 == 1 })

        // Ten recipients: below the minimum, they go through esms-cc.
        let few = ProviderCampaign.numbers(10, from: 500)
        ProviderCampaign.write(work, id: "it-esms-few", numbers: few, text: "Khuyen mai nho: Loa contract test")
        try #require(try loa.cli(["campaign", "submit", work.file("campaign/campaign.json")]).status == 0)
        let fewStates = try await SimCampaign.settle(loa, nil, id: "it-esms-few", n: few.count, seconds: 60)
        #expect(fewStates["delivered"] == 10, "\(fewStates)")
        #expect(Set(cc.sendsPerNumber().keys) == Set(few) && cc.sendsPerNumber().values.allSatisfy { $0 == 1 })
        #expect(bulk.sendsPerNumber().keys.allSatisfy { !few.contains($0) })
    }

    // MARK: Pace at the documented request limits of batch APIs

    /// SpeedSMS allows 60 requests a minute (speedsms.vn/sms-api, "Rate limit"): the fake holds exactly that, the
    /// shipped profile sends 1 request a second with full batches of 100: 100 recipients a second, never a 429.
    @Test(.timeLimit(.minutes(2))) func speedSMSKeepsPaceAtTheDocumentedLimit() async throws {
        let n = 1000
        let run = try await ProviderRun.start("speedsms-pace", provider: "speedsms", profile: "speedsms.json5", credentials: "speed-token-0001",
                                              secrets: Self.speedSecrets, fakeArgs: ["--rate", "60", "--per", "60"],
                                              accountCallback: true)
        defer { run.stop() }
        try run.submit(id: "it-speedsms-pace", numbers: ProviderCampaign.numbers(n), text: "Loa pace test")
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-speedsms-pace", n: n, seconds: 90)
        #expect(states["delivered"] == n, "\(states)")
        let pace = run.fake.acceptedPerSecond(interval: 1)
        let stats = try await run.fake.stats()
        #expect(abs(pace - 100) <= 10, "recipients/s \(pace), limit 100: \(stats["batch_sizes"] ?? [])")
        #expect(stats["throttled"] as? Int == 0, "\(stats)")
        #expect(run.fake.sendsPerNumber().values.allSatisfy { $0 == 1 })
    }

    /// Loa configured above SpeedSMS's limit (4 requests a second against 2 a second, scaled down from 60 a
    /// minute): the 429s with X-Rate-Limit-Reset bring it down to the limit without spending attempts. It keeps
    /// most of the pace, not all: 142 to 192 recipients a second of 200 in runs of 1000 (the header says whole
    /// seconds, and the first 429s cost their wait); the shipped profile at the documented limit loses nothing.
    @Test(.timeLimit(.minutes(2))) func speedSMSThrottledAboveItsLimitKeepsPace() async throws {
        let n = 1000
        let run = try await ProviderRun.start("speedsms-429", provider: "speedsms", profile: "speedsms.json5", credentials: "speed-token-0001",
                                              secrets: Self.speedSecrets, fakeArgs: ["--rate", "2", "--per", "1"],
                                              accountCallback: true, overrides: ["requests_per_second": "4", "rate": "400"])
        defer { run.stop() }
        try run.submit(id: "it-speedsms-429", numbers: ProviderCampaign.numbers(n), text: "Loa pace test")
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-speedsms-429", n: n, seconds: 90)
        #expect(states["delivered"] == n, "\(states)")
        let pace = run.fake.acceptedPerSecond(interval: 0.5)
        let stats = try await run.fake.stats()
        #expect(pace >= 120, "recipients/s \(pace), limit 200: throttled \(stats["throttled"] ?? 0), batches \(stats["batch_sizes"] ?? [])")
        #expect((stats["throttled"] as? Int ?? 0) >= 1, "\(stats)")
        #expect((try await ProviderCampaign.messages(run.loa, "it-speedsms-429")).values.allSatisfy { $0.attempts == 1 })
    }

    /// Infobip at a request limit (2 a second; Infobip publishes none for SMS): full batches of 100, 200 recipients a second.
    @Test(.timeLimit(.minutes(2))) func infobipKeepsPaceAtARequestLimit() async throws {
        let n = 1400
        let run = try await ProviderRun.start("infobip-pace", provider: "infobip", profile: "infobip.json5", credentials: "infobip-key-0001",
                                              secrets: Self.infobipSecrets, fakeArgs: ["--rate", "2", "--per", "1"],
                                              overrides: ["requests_per_second": "2"])
        defer { run.stop() }
        try run.submit(id: "it-infobip-pace", numbers: ProviderCampaign.numbers(n), text: "Loa pace test")
        let states = try await SimCampaign.settle(run.loa, nil, id: "it-infobip-pace", n: n, seconds: 90)
        #expect(states["delivered"] == n, "\(states)")
        let pace = run.fake.acceptedPerSecond(interval: 0.5)
        let stats = try await run.fake.stats()
        #expect(abs(pace - 200) <= 20, "recipients/s \(pace), limit 200: throttled \(stats["throttled"] ?? 0), batches \(stats["batch_sizes"] ?? [])")
    }

    // MARK: Wrong credentials

    /// Each provider's documented answer to wrong credentials (Twilio 401/20003, Infobip 401, Vonage status 4, eSMS
    /// 101, SpeedSMS 401) is an authentication refusal: nothing is sent, nothing fails or spends an attempt, and
    /// `loa carriers` says the carrier refuses Loa's credentials.
    @Test(.timeLimit(.minutes(2)), arguments: ["twilio", "infobip", "vonage", "esms-cc", "speedsms"])
    func wrongCredentialsAreAnAuthenticationRefusal(provider: String) async throws {
        let (credentials, secrets): (String, [String: String]) = switch provider {
        case "twilio": ("ACfake0001:the-right-token", Self.twilioSecrets)
        case "infobip": ("the-right-key", Self.infobipSecrets)
        case "vonage": ("vkey0001:the-right-secret", Self.vonageSecrets)
        case "esms-cc": ("esms-api-key:the-right-secret", Self.esmsSecrets)
        default: ("the-right-token", Self.speedSecrets)
        }
        let run = try await ProviderRun.start("\(provider)-auth", provider: provider, profile: "\(provider).json5", credentials: credentials,
                                              secrets: secrets, accountCallback: provider == "speedsms", retry: fastRetry)
        defer { run.stop() }
        let n = 5
        try run.submit(id: "it-auth", numbers: ProviderCampaign.numbers(n), text: "Loa auth test")
        try await poll(30, "the carrier to show the refusal") {
            let list = (try JSONSerialization.jsonObject(with: Data(try await run.loa.api("/api/v1/carriers").body)) as? [[String: Any]]) ?? []
            return list.first?["auth_refused"] != nil
        }
        #expect((try await run.fake.stats()["unauthorized"] as? Int ?? 0) >= 1)
        #expect(run.fake.ledger().isEmpty)
        let out = try run.loa.cli(["carriers"]).output
        #expect(out.contains("REFUSES LOA'S CREDENTIALS"), "loa carriers: \(out)")
        let states = try await SimCampaign.states(run.loa, "it-auth")
        #expect(states["failed"] == nil && (states["queued"] ?? 0) + (states["sending"] ?? 0) == n, "\(states)")
    }
}
