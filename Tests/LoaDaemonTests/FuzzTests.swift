import Foundation
import LoaCore
import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

/// The short fuzz run on every `swift test`: each target of ``FuzzTargets`` gets its seeds
/// (Tests/Fuzz/seeds/<target>/), every crash input found so far (Tests/Fuzz/regressions/<target>/), and a fixed
/// number of seeded mutations of them. Deterministic: the same cases every run. A trap fails the whole run,
/// which is what a crash in the daemon would do. The long run is Tests/Fuzz/run.sh (libFuzzer, the same targets).
///
/// The targets live in this test target, not one per module, because the receipt and routing targets need the
/// daemon's whole service and the file targets its loaders; the pure ones cost nothing extra here.
@Suite struct FuzzTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz").path

    /// Mutations per target: more for the pure parsers, fewer for the targets that write a file or a store.
    static let budget: [String: Int] = [
        "csv": 10000, "template": 10000, "smstext": 5000, "phone": 10000, "json": 10000,
        "config": 2000, "campaign": 3000, "receipt-kannel": 3000, "receipt-jasmin": 3000, "receipt-generic": 3000, "route": 2000,
    ]

    static func files(_ dir: String) -> [[UInt8]] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.sorted().compactMap { FileManager.default.contents(atPath: dir + "/" + $0).map { [UInt8]($0) } }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func seedsRegressionsAndMutations(_ name: String) {
        let run = FuzzTargets.all.first { $0.name == name }!.run
        let seeds = Self.files(Self.root + "/seeds/" + name)
        let regressions = Self.files(Self.root + "/regressions/" + name)
        #expect(!seeds.isEmpty, "no seeds for \(name) in \(Self.root)/seeds")
        for input in seeds + regressions { run(input) }
        var mutator = Mutator(seed: 0x5EED_0000 &+ UInt64(name.utf8.reduce(0) { $0 &* 31 &+ Int($1) }.magnitude))
        let corpus = seeds + regressions
        for _ in 0..<(Self.budget[name] ?? 1000) { run(mutator.mutate(corpus)) }
    }

    /// Found by the campaign target: Foundation's JSON5 reader traps on invalid UTF-8 in an unquoted key, so
    /// `loa check` and `campaign submit` crashed on such a file. Now it is refused, naming the line.
    @Test func invalidUTF8InAJSON5FileIsAProblemNotACrash() throws {
        let s = Scratch()
        let campaign = s.path + "/campaign.json"
        try Data([0x7B, 0x0A, 0x0A, 0xFD, 0xFF, 0xFF, 0x7D, 0x20, 0x7D]).write(to: URL(fileURLWithPath: campaign))
        guard case .failure(let problems) = CampaignLoader.load(path: campaign) else {
            Issue.record("a campaign file that is not UTF-8 must not load")
            return
        }
        #expect(problems.problems == [Problem(file: campaign, line: 3, field: "-", reason: "not valid UTF-8")])
        let config = s.path + "/loa.json"
        try Data(Array("{ \"data_dir\": \"d\",\n".utf8) + [0xC3, 0x28, 0x3A, 0x31, 0x7D]).write(to: URL(fileURLWithPath: config))
        guard case .failure(let p) = ConfigLoader.load(path: config, environment: [:]) else {
            Issue.record("a config file that is not UTF-8 must not load")
            return
        }
        #expect(p.problems == [Problem(file: config, line: 2, field: "-", reason: "not valid UTF-8")])
    }
}

/// Found by the campaign target's long run: Foundation's JSON5 reader traps on a Double written `1e-` or `2E+`
/// (an exponent sign without digits), so `"max_rate": 1e-}` crashed `loa check`. Refused now, with its line.
@Suite struct JSON5NumberTests {
    @Test func anExponentWithoutDigitsIsAProblemNotACrash() throws {
        let s = Scratch()
        // Every other field is there, so the decoder reaches max_rate (where it trapped).
        let fields = #"{"id": "c", "sender": "S", "templates": [], "segments": [], "start": "", "deadline": "", "#
        for (text, line) in [("\n \"max_rate\": 1e-}", 2), ("\"max_rate\":2E+ ,\n}", 1), ("// 1e-\n\"a\": \"1e-\",\n\n \"max_rate\": 0.5e+\n}", 4)] {
            let path = s.write("c.json", fields + text)
            guard case .failure(let problems) = CampaignLoader.load(path: path) else {
                Issue.record("\(text) must not load")
                continue
            }
            #expect(problems.problems == [Problem(file: path, line: line, field: "-", reason: "a number's exponent has no digits")], "\(text)")
        }
        // Exponents with digits, and the letters in strings, comments and names, are left to the decoder.
        for text in ["{\"max_rate\": 1e-3, \"x\": 'e-', /* 1e- */ \"see-\": 2}", "{\"id\": \"a1e-b\"}"] {
            #expect(JSON5File.exponentWithoutDigitsLine(Array(text.utf8)) == nil, "\(text)")
        }
    }
}

/// Found by the campaign target's long run: a segment named `a.csv///h//` trapped in Foundation's
/// `NSString.lastPathComponent` (and `deletingLastPathComponent` traps on such a campaign path), so `loa check`
/// and `campaign submit` crashed. Loa splits paths itself now.
@Suite struct PathTextTests {
    @Test func pathsAreSplitLikeNSStringWithoutTrapping() {
        let cases: [(String, String, String)] = [
            ("a/b.csv", "b.csv", "a"), ("/b.csv", "b.csv", "/"), ("b.csv", "b.csv", ""), ("", "", ""), ("/", "/", "/"),
            ("a.csv///h//", "h", "a.csv"), ("a//b//c/", "c", "a//b"), ("//x", "x", "/"), ("dir/", "dir", ""),
        ]
        for (path, last, dir) in cases {
            #expect(PathText.lastComponent(of: path) == last, "\(path)")
            #expect(PathText.directory(of: path) == dir, "\(path)")
        }
    }

    @Test func aSegmentNameWithRunsOfSlashesIsAProblemNotACrash() {
        let s = Scratch()
        let path = s.write("c.json", """
            { "id": "c", "sender": "UBND", "templates": ["t.txt"], "segments": ["a.csv///h//"],
              "start": "2026-11-01T07:00:00+07:00", "deadline": "2027-12-31T22:00:00+07:00" }
            """)
        _ = s.write("t.txt", "Xin chào")
        guard case .failure(let problems) = CampaignLoader.load(path: path) else {
            Issue.record("a segment that cannot be read must not load")
            return
        }
        #expect(problems.problems.map(\.field) == ["segments.0"], "\(problems)")
    }
}

/// Seeded mutations in the style of libFuzzer's: byte flips, inserts, erases, copies of a range, splices of two
/// inputs, and tokens that parsers of text formats stumble on. A xorshift generator keeps every run the same.
struct Mutator {
    private var state: UInt64

    init(seed: UInt64) { state = seed | 1 }

    mutating func next(_ bound: Int) -> Int {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return bound <= 0 ? 0 : Int(state % UInt64(bound))
    }

    static let tokens: [[UInt8]] = [
        "\"", ",", "\r\n", "\r", "\n", "{{", "}}", "|", "{", "}", "[", "]", ":", "&", "=", "%", "%2", "%ZZ", "+", "/", "~",
        "1e300", "-1e300", "1e-300", "-1", "0", "9223372036854775807", "-9223372036854775808", "18446744073709551616",
        "NaN", "Infinity", "null", "true", "\"\"", "\\u0000", "\\ud800", "ệ", "😀", "\u{0}", "//", "/*", "..", "+84", "0912345678",
    ].map { Array($0.utf8) } + [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xEF, 0xBB, 0xBF]]

    mutating func mutate(_ corpus: [[UInt8]]) -> [UInt8] {
        var b = corpus.isEmpty ? [] : corpus[next(corpus.count)]
        for _ in 0...next(4) {
            let at = next(b.count + 1)
            switch next(7) {
            case 0 where !b.isEmpty: b[next(b.count)] ^= UInt8(1 << next(8))
            case 1: b.insert(UInt8(next(256)), at: at)
            case 2 where !b.isEmpty: b.removeSubrange(at..<min(b.count, at + 1 + next(16)))
            case 3 where !b.isEmpty:
                let from = next(b.count)
                b.insert(contentsOf: b[from..<min(b.count, from + 1 + next(32))], at: at)
            case 4 where !corpus.isEmpty:
                let other = corpus[next(corpus.count)]
                b = Array(b[..<at]) + other[min(other.count, next(other.count + 1))...]
            case 5 where !b.isEmpty: b[next(b.count)] = UInt8(next(256))
            default: b.insert(contentsOf: Self.tokens[next(Self.tokens.count)], at: at)
            }
        }
        return Array(b.prefix(8192))
    }
}

/// The fuzz service answers as the daemon does, so the targets reach the code behind authentication.
@Suite struct FuzzServiceTests {
    @Test func theFuzzServiceReachesReceiptsAndTheAPI() {
        let s = FuzzService.shared
        func status(_ method: String, _ path: String, _ query: String = "", body: String = "", token: Bool = true) -> Int {
            let head = FuzzService.head(method: method, path: path, query: Array(query.utf8),
                                        headers: token ? ["authorization": "Bearer " + FuzzService.apiToken] : [:])
            return s.handle(head, body: Array(body.utf8), piece: 7).status
        }
        let k = "k=" + FuzzService.receiptSecret
        let sub = #"{"id":"sanity","sender":"UBND","templates":[{"name":"t","text":"Xin chào {{name|bạn}}","weight":1}],"#
            + #""segments":[{"name":"a.csv","phone_column":"phone","format":"csv"}],"#
            + #""start":"2026-11-01T07:00:00+07:00","deadline":"2027-12-31T22:00:00+07:00"}"#
        #expect(status("POST", "/api/v1/campaigns", body: sub) == 201)
        #expect(status("PUT", "/api/v1/campaigns/sanity/segments/a.csv", body: "phone,name\n0912345678,An\n0912345679,\n") == 200)
        #expect(status("POST", "/api/v1/campaigns/sanity/commit") == 200)
        #expect(status("GET", "/api/v1/campaigns/sanity") == 200)
        #expect(status("GET", "/api/v1/campaigns", token: false) == 401)
        #expect(status("GET", "/dlr/kannel", "id=1&st=1") == 401)
        #expect(status("GET", "/dlr/kannel", "id=999999&st=1&" + k) == 404)
        // A receipt keyed by the gateway's id waits for its message (200); one keyed by Loa's id must find it (404).
        #expect(status("POST", "/dlr/jasmin", k, body: "id=x&message_status=DELIVRD&level=2") == 200)
        #expect(status("POST", "/dlr/jasmin", k, body: "m=999999&message_status=DELIVRD&level=2") == 404)
        #expect(status("POST", "/dlr/gj", k, body: #"{"items":[{"ref":"1","status":"DELIVRD"},{"ref":"2","status":"X"}]}"#) == 200)
        #expect(status("POST", "/dlr/gf", k, body: "id=1&status=NOPE") == 400)
        #expect(status("GET", "/dlr/gq", "sid=r&phone=0912345678&stat=DELIVRD&" + k) == 200)
        #expect(status("GET", "/dlr/gq", "sid=r&phone=0912345678&stat=WHAT&" + k) == 400)
    }
}
