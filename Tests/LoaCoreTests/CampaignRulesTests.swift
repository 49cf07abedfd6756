import Foundation
import Testing

@testable import LoaCore

/// The campaign rules and the arithmetic behind them: no value from outside can trap.
@Suite struct CampaignRulesTests {
    static func submission(_ edit: (inout CampaignSubmission) -> Void = { _ in }) -> CampaignSubmission {
        var s = CampaignSubmission(id: "c1", name: nil, sender: "LOA", templates: [.init(name: "t", text: "Moi gop y {{name|ban}}")],
                                   segments: [.init(name: "s.csv", phoneColumn: "phone")], start: "2026-11-24T08:00:00+07:00",
                                   deadline: "2026-11-30T22:00:00+07:00", encoding: .auto, maxSegments: nil, allowedCountryCodes: [])
        edit(&s)
        return s
    }

    static func fields(_ s: CampaignSubmission, known: [String]? = ["a", "b"]) -> [String] {
        CampaignRules.check(s, knownCarriers: known).map(\.field)
    }

    @Test func aGoodCampaignPasses() {
        #expect(CampaignRules.check(Self.submission(), knownCarriers: ["a"]).isEmpty)
        #expect(Self.submission().maxParts == CampaignRules.defaultMaxSegments)
    }

    @Test func idsCannotBeDotsOrOptions() {
        for bad in [".", "..", "-x", "_x", ".hidden", "", String(repeating: "a", count: 65), "a b", "a/b", "ü"] {
            #expect(CampaignRules.idProblem(bad) != nil, "\(bad)")
        }
        for good in ["a", "a.b", "wave-2", "2026_11", String(repeating: "a", count: 64)] {
            #expect(CampaignRules.idProblem(good) == nil, "\(good)")
        }
    }

    @Test func numbersOutsideTheirRangesAreNamed() {
        #expect(Self.fields(Self.submission { $0.maxRate = 1e300 }) == ["max_rate"])
        #expect(Self.fields(Self.submission { $0.maxRate = 1e-300 }) == ["max_rate"])
        #expect(Self.fields(Self.submission { $0.maxRate = .nan }) == ["max_rate"])
        #expect(Self.fields(Self.submission { $0.maxRate = .infinity }) == ["max_rate"])
        #expect(Self.fields(Self.submission { $0.maxRate = 0 }) == ["max_rate"])
        #expect(Self.fields(Self.submission { $0.maxRate = 0.5 }).isEmpty)
        #expect(Self.fields(Self.submission { $0.weight = Int.max; $0.priority = .urgent }) == ["weight"])
        #expect(Self.fields(Self.submission { $0.templates[0].weight = Int.max }) == ["templates.0.weight"])
        #expect(Self.fields(Self.submission { $0.maxSegments = 0 }) == ["max_segments"])
        #expect(Self.fields(Self.submission { $0.maxSegments = 256 }) == ["max_segments"])
        #expect(Self.fields(Self.submission { $0.maxSegments = 255 }).isEmpty)
        #expect(Self.fields(Self.submission { $0.deadline = "9999-01-01T00:00:00Z" }) == ["deadline"])
    }

    @Test func textsAndListsAreChecked() {
        #expect(Self.fields(Self.submission { $0.sender = "" }) == ["sender"])
        #expect(Self.fields(Self.submission { $0.sender = String(repeating: "S", count: 10_000) }) == ["sender"])
        #expect(Self.fields(Self.submission { $0.sender = "LOA\u{1b}[2J" }) == ["sender"])
        #expect(Self.fields(Self.submission { $0.sender = "+84912345678" }).isEmpty, "a number sender")
        #expect(Self.fields(Self.submission { $0.name = "a\nb" }) == ["name"])
        #expect(Self.fields(Self.submission { $0.carriers = ["a", "a"] }) == ["carriers"])
        #expect(Self.fields(Self.submission { $0.carriers = ["zz"] }) == ["carriers.0"])
        #expect(Self.fields(Self.submission { $0.carriers = ["zz"] }, known: nil).isEmpty, "unknown carriers are only checked with the config")
        #expect(Self.fields(Self.submission { $0.segments.append(.init(name: "s.csv", phoneColumn: "phone")) }) == ["segments.1"])
        #expect(Self.fields(Self.submission { $0.segments[0].name = ".." }) == ["segments.0.name"])
        #expect(Self.fields(Self.submission { $0.templates[0].text = "{{oops" }) == ["templates.0"])
        #expect(Self.fields(Self.submission { $0.templates[0].text = String(repeating: "a", count: 40_801) }) == ["templates.0"])
        #expect(Self.fields(Self.submission { $0.allowedCountryCodes = ["84", "+1"] }) == ["allowed_country_codes.1"])
    }

    @Test func unknownKeysAreRefusedWithTheKeyMeant() throws {
        let body = #"{"id": "c", "sender": "L", "templates": [{"name": "t", "text": "x"}], "segments": [{"name": "s"}], "#
            + #""start": "2026-11-24T08:00:00+07:00", "deadline": "2026-11-30T22:00:00+07:00", "max_rates": 5}"#
        #expect(throws: UnknownField.self) { try JSONDecoder().decode(CampaignSubmission.self, from: Data(body.utf8)) }
        do {
            _ = try JSONDecoder().decode(CampaignSubmission.self, from: Data(body.utf8))
        } catch let e as UnknownField {
            #expect(e.path == "max_rates")
            #expect(e.reason == "unknown field (did you mean max_rate?)")
        }
        let nested = body.replacingOccurrences(of: #"{"name": "t", "text": "x"}"#, with: #"{"name": "t", "text": "x", "wieght": 2}"#)
            .replacingOccurrences(of: #", "max_rates": 5"#, with: "")
        do {
            _ = try JSONDecoder().decode(CampaignSubmission.self, from: Data(nested.utf8))
            Issue.record("decoded")
        } catch let e as UnknownField {
            #expect(e.path == "templates.0.wieght" && e.reason.contains("weight"))
        }
    }

    @Test func bucketsAndSharesNeverTrap() {
        for rate in [0.0, -1, 1e-300, 1e300, .nan, .infinity] {
            var b = TokenBucket(rate: rate, burst: TokenBucket.burst(rate: rate, seconds: 0.1), now: 0)
            _ = b.take(upTo: 10, now: 1_000)
            _ = b.whenAvailable(5, now: 1_000)
            b.charge(1_000_000, now: 2_000)
            #expect(b.whenAvailable(1, now: 2_000) >= 2_000)
            var l = CarrierLimiter(rate: rate, maxInFlight: 4, now: 0)
            _ = l.grant(max: 100, now: 10)
        }
        var fair = FairShare()
        let split = fair.split(100, among: [.init(id: "a", weight: Int.max, urgent: true), .init(id: "b", weight: Int.min, urgent: false)])
        #expect(split.values.reduce(0, +) == 100)
        let f = Feasibility.estimate(remaining: ["a": 1_000_000], rates: ["a": 1e-300], maxRate: 1e-300, windows: .standard,
                                     start: 0, deadline: 86_400_000, now: 0)
        #expect(!f.onTime)
        #expect((1e300).clampedInt(0...10) == 10 && (-1e300).clampedInt(0...10) == 0 && Double.nan.clampedInt(3...4) == 3 && (2.7).clampedInt() == 2)
    }
}
