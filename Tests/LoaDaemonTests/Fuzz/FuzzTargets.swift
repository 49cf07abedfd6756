import Foundation
import LoaCarriers
import LoaCore
@testable import LoaCommandLine
@testable import LoaDaemon
import LoaServer
import Synchronization

/// Loa's fuzz targets: every parser that reads bytes from outside, one function each, taking any bytes.
///
/// A target must never trap, whatever the input: a Swift trap (precondition, overflow, force unwrap, index
/// out of range) is a crash. Some targets also check a property with `precondition` (chunking never changes
/// CSV records, split parts join back to the text), so a wrong answer is a crash too.
///
/// The same functions run in two places: ``FuzzTests`` (seeds, every crash found so far, and a few thousand
/// seeded mutations on every `swift test`) and Tests/Fuzz/run.sh, which links them with libFuzzer for the long
/// run. Inputs that select something (a mode, a chunk size) take it from the first byte.
enum FuzzTargets {
    static let all: [(name: String, run: @Sendable ([UInt8]) -> Void)] = [
        ("csv", csv), ("template", template), ("smstext", smstext), ("phone", phone), ("json", json),
        ("config", config), ("campaign", campaign), ("receipt-kannel", kannelReceipt), ("receipt-jasmin", jasminReceipt),
        ("receipt-generic", genericReceipt), ("route", route),
    ]

    /// CSV reader: the input is fed in chunks whose size the first byte chooses (boundaries inside UTF-8
    /// characters, between CR and LF, between two quotes), with a record limit from the second; the header and
    /// every record are checked, and the same bytes in one piece must give the same records.
    static func csv(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let chunk = Int(input.byte() % 17) + 1
        let maxRecord = Int(input.byte()) * 4 + 1
        let body = input.rest()
        var parser = CSVPushParser(maxRecordBytes: maxRecord)
        var header: CSVHeader?
        var rows: [CSVRow] = []
        let emit: (CSVRow) -> Void = { row in
            switch row {
            case .record(let line, let fields):
                precondition(line >= 1 && !fields.isEmpty)
                if header == nil {
                    let h = CSVHeader(fields: fields)
                    for f in fields { precondition(h.index(of: f) != nil) }
                    header = h
                }
            case .malformed(let line, let reason, _, _):
                precondition(line >= 1 && !reason.isEmpty)
            }
            rows.append(row)
        }
        var i = 0
        while i < body.count {
            let end = min(body.count, i + chunk)
            body[i..<end].withUnsafeBytes { parser.feed($0, emit) }
            i = end
        }
        parser.finish(emit)
        var whole = CSVPushParser(maxRecordBytes: maxRecord)
        var again: [CSVRow] = []
        body.withUnsafeBytes { whole.feed($0) { again.append($0) } }
        whole.finish { again.append($0) }
        precondition(again == rows, "chunking changed the records")
    }

    /// Template parser and renderer: up to a NUL byte the template, then `name=value` lines; the rendered text is
    /// encoded and split as a message would be, and the parts join back to it.
    static func template(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let policy: EncodingPolicy = [.auto, .unicode, .ascii][Int(input.byte() % 3)]
        let source = fuzzText(input.upTo(0))
        var values: [String: String] = [:]
        for line in fuzzText(input.rest()).split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            values[kv[0].lowercased()] = kv.count > 1 ? String(kv[1]) : ""
        }
        guard let template = try? Template(name: "fuzz", source: source) else { return }
        for p in template.placeholders { precondition(!p.name.isEmpty) }
        guard let rendered = try? template.render({ values[$0] }) else { return }
        let (sent, info) = SMSText.prepare(rendered, policy: policy)
        precondition(SMSText.split(sent, encoding: info.encoding).joined() == sent, "split lost text")
    }

    /// SMS encoding and part counting: NFC, transliteration, GSM-7 / UCS-2 costs, splitting; the count of
    /// parts agrees with the splitter.
    static func smstext(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let policy: EncodingPolicy = [.auto, .unicode, .ascii][Int(input.byte() % 3)]
        let s = fuzzText(input.rest())
        precondition(SMSText.analyze(s).segments >= 1)
        let (sent, info) = SMSText.prepare(s, policy: policy)
        for encoding in [SMSEncoding.gsm7, .ucs2] {
            precondition(SMSText.split(sent, encoding: encoding).joined() == sent, "split lost text")
        }
        precondition(sent.isEmpty || SMSText.split(sent, encoding: info.encoding).count == info.segments, "count and split disagree")
        for scalar in s.unicodeScalars { _ = GSM7.cost(scalar) }
    }

    /// Phone number normalization, with and without foreign country codes allowed; a normalized number
    /// normalizes to itself.
    static func phone(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let allowed: Set<String> = input.byte() & 1 == 1 ? ["1", "44", "65", "855", "856"] : []
        let raw = fuzzText(input.rest())
        switch PhoneNormalizer.normalize(raw, allowedCountryCodes: allowed) {
        case .success(let n):
            precondition(n.e164.hasPrefix("+"))
            _ = n.masked
            guard case .success(let again) = PhoneNormalizer.normalize(n.e164, allowedCountryCodes: allowed), again.e164 == n.e164 else {
                preconditionFailure("normalizing \(n.masked) again changed it")
            }
        case .failure(let r):
            _ = r.description
        }
        _ = PhoneNumber.mask(raw)
    }

    /// Loa's own JSON parser (generic gateways' answers and receipts) and JSON pointers: the first line is a
    /// pointer, the rest the document.
    static func json(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let pointer = JSONPointer(fuzzText(input.upTo(0x0A)))
        let body = input.rest()
        _ = JSONValue.parse(body, maxDepth: 2)
        guard let doc = JSONValue.parse(body) else { return }
        precondition(doc == doc)
        if let pointer, let v = pointer.resolve(doc) { _ = v.scalarText }
    }

    /// The JSON5 config loader and its validation (`loa check --config`), on the input written as a file, for
    /// the daemon and for the CLI. Secrets come from a fixed environment; files resolve in a scratch directory.
    static func config(_ bytes: [UInt8]) {
        let path = FuzzScratch.directory + "/loa.json"
        precondition(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let env = ["LOA_API_TOKEN": "fuzz-api-token-0123456789abcdef", "S": "fuzz-receipt-secret-0123456789", "PW": "pw", "EMPTY": ""]
        for clientOnly in [false, true] {
            switch ConfigLoader.load(path: path, clientOnly: clientOnly, environment: env) {
            case .success(let c): _ = c.carriers.count
            case .failure(let p): precondition(!p.problems.isEmpty); _ = p.description
            }
        }
    }

    /// Campaigns by the three ways in, picked by the first byte. 0: the campaign file loader (`loa check`,
    /// `campaign submit`) on the input written as a file next to a template and a segment it may name;
    /// 1: `POST /api/v1/campaigns` with the input as body, on a real store; 2: the JSON locator that names a
    /// field's line (first line: the dotted path, the rest: the text).
    static func campaign(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        switch input.byte() % 3 {
        case 0:
            let path = FuzzScratch.directory + "/campaign.json"
            precondition(FileManager.default.createFile(atPath: path, contents: Data(input.rest())))
            switch CampaignLoader.load(path: path) {
            case .success(let c): _ = c.templates.count
            case .failure(let p): precondition(!p.problems.isEmpty); _ = p.description
            }
        case 1:
            let head = FuzzService.head(method: "POST", path: "/api/v1/campaigns", query: [],
                                        headers: ["authorization": "Bearer " + FuzzService.apiToken, "content-type": "application/json"])
            _ = FuzzService.shared.handle(head, body: input.rest())
        default:
            let field = fuzzText(input.upTo(0x0A))
            precondition(JSONLocator(fuzzText(input.rest())).line(of: field) >= 1)
        }
    }

    /// Kannel's receipts: `GET /dlr/kannel?<query>` (`id`, `st`, `fc`, `ans` as Kannel's dlr-url fills them)
    /// with the right secret, on a real store. The first byte picks GET or POST.
    static func kannelReceipt(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let post = input.byte() & 1 == 1
        var head = FuzzService.head(method: post ? "POST" : "GET", path: "/dlr/kannel", query: input.rest())
        head.query["k"] = FuzzService.receiptSecret
        _ = FuzzService.shared.handle(head, body: [])
    }

    /// Jasmin's receipts: `POST /dlr/jasmin?<query>&k=<secret>` with a form body (`id`, `message_status`,
    /// `level`, `err`, ...), on a real store. First byte: the content type; then the query up to a NUL; the body.
    static func jasminReceipt(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let type = ["application/x-www-form-urlencoded", "", "text/plain", "application/json"][Int(input.byte() % 4)]
        var head = FuzzService.head(method: "POST", path: "/dlr/jasmin", query: input.upTo(0), headers: type.isEmpty ? [:] : ["content-type": type])
        head.query["k"] = FuzzService.receiptSecret
        _ = FuzzService.shared.handle(head, body: input.rest())
    }

    /// A generic gateway's receipts in each configured shape: a JSON list (`gj`), one JSON receipt keyed by the
    /// gateway's id and the number (`gs`), a form body (`gf`), the query alone (`gq`). The first byte picks the
    /// carrier, content type and method; then the query up to a NUL; the body. On a real store.
    static func genericReceipt(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let pick = input.byte()
        let carrier = ["gj", "gs", "gf", "gq"][Int(pick % 4)]
        let type = ["application/json", "application/x-www-form-urlencoded", "", "text/plain"][Int(pick / 4 % 4)]
        var head = FuzzService.head(method: pick & 0x10 == 0 ? "POST" : "GET", path: "/dlr/" + carrier, query: input.upTo(0),
                                    headers: type.isEmpty ? [:] : ["content-type": type])
        head.query["k"] = FuzzService.receiptSecret
        _ = FuzzService.shared.handle(head, body: input.rest())
    }

    /// HTTP request routing over the whole service (health, receipts, replies, metrics, the operator API with
    /// segment uploads), on a real store. Up to four requests separated by NUL bytes, so a campaign can be
    /// created, fed, committed and shown in one input. Each request: a flags byte (bit 0: the right bearer
    /// token, bit 1: the right receipt secret `k`, bits 2-4: the size of the body's pieces), then
    /// `METHOD /path?query`, header lines, an empty line and the body.
    static func route(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        var requests = 0
        while input.position < input.bytes.count && requests < 4 {
            requests += 1
            var request = FuzzInput(input.upTo(0))
            let flags = request.byte()
            let line = fuzzText(request.upTo(0x0A))
            let sp = line.firstIndex(of: " ") ?? line.endIndex
            let method = String(line[..<sp])
            let target = sp < line.endIndex ? String(line[line.index(after: sp)...]) : "/"
            let q = target.firstIndex(of: "?")
            let rawPath = String(target[..<(q ?? target.endIndex)])
            let query = q.map { Array(target[target.index(after: $0)...].utf8) } ?? []
            var headers: [String: String] = [:]
            while request.position < request.bytes.count {
                let h = fuzzText(request.upTo(0x0A))
                if h.isEmpty || h == "\r" { break }
                guard let colon = h.firstIndex(of: ":") else { continue }
                let name = h[..<colon].lowercased()
                let value = h[h.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                headers[name] = headers[name].map { $0 + ", " + value } ?? value
            }
            if flags & 1 == 1 { headers["authorization"] = "Bearer " + FuzzService.apiToken }
            var head = FuzzService.head(method: method, path: rawPath.removingPercentEncoding ?? rawPath, query: query, headers: headers)
            if flags & 2 == 2 { head.query["k"] = FuzzService.receiptSecret }
            let piece = [1, 7, 64, 512, 4096, 32768, 3, 100][Int(flags >> 2 & 7)]
            _ = FuzzService.shared.handle(head, body: request.rest(), piece: piece)
        }
    }
}

/// A scratch directory for the file-reading targets, holding a secret, a ported-numbers file, a template and a
/// segment that fuzzed configs and campaigns may name; removed at exit.
enum FuzzScratch {
    static let directory: String = {
        let dir = NSTemporaryDirectory() + "loa-fuzz-files-\(getpid())"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let files = [
            "secret": "fuzz-secret-from-a-file-0123456789\n",
            "ported.csv": "number,network\n84912345678,viettel\n",
            "t.txt": "Xin chào {{name|bạn}}, hãy cập nhật {{ward}}.\n",
            "a.csv": "phone,name,ward\n0912345678,An,Ba Đình\n",
        ]
        for (name, text) in files { try! Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/" + name)) }
        removeAtExit(dir)
        return dir
    }()
}

/// Directories to remove when the process exits (libFuzzer ends with `exit`; a C callback cannot capture).
/// Behind a lock: route tests make services of their own in parallel.
private let scratchDirectories = Mutex<[String]>([])
func removeAtExit(_ directory: String) {
    let first = scratchDirectories.withLock { list in
        list.append(directory)
        return list.count == 1
    }
    if first {
        atexit { for d in scratchDirectories.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: d) } }
    }
}
