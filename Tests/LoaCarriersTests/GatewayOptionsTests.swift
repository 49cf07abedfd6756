import Foundation
import LoaCarriers
import LoaCore
import Testing

/// Kannel's `smsc`, `priority`, `deferred`, `validity` and Jasmin's `validity-period`, `max_parts` and GSM-7
/// escape cut, in the requests the adapters build.
@Suite struct GatewayOptionsTests {
    static let now: UnixMillis = 1_796_000_000_000

    func sms(_ text: String = "Hello", encoding: SMSEncoding = .gsm7, validUntil: UnixMillis? = now + 45 * 60_000 + 59_000) -> OutgoingSMS {
        OutgoingSMS(id: 42, from: "UBND-HCM", to: "+84912345678", text: text, encoding: encoding, segments: 1,
                    receiptURL: "http://127.0.0.1:8780/dlr/k?k=secret&m=42", validUntil: validUntil)
    }

    func kannel(_ engine: CurlEngine, post: Bool = false, _ options: KannelOptions) -> KannelAdapter {
        KannelAdapter(name: "k", sendsmsURL: "http://127.0.0.1:13013/cgi-bin/sendsms", username: "loa", password: "pw", timeout: 5,
                      engine: engine, usePOST: post, options: options, clock: ManualTimeSource(Self.now))
    }

    func jasmin(_ engine: CurlEngine, post: Bool = false, _ options: JasminOptions = JasminOptions()) -> JasminAdapter {
        JasminAdapter(name: "j", sendURL: "http://127.0.0.1:1401/send", username: "loa", password: "pw", timeout: 5, engine: engine,
                      usePOST: post, options: options, clock: ManualTimeSource(Self.now))
    }

    /// The query of a GET request, decoded.
    func query(_ r: HTTPRequest) -> [String: String] {
        var out: [String: String] = [:]
        let q = r.url.split(separator: "?", maxSplits: 1).last.map(String.init) ?? ""
        for pair in (r.method == "POST" ? String(decoding: r.body, as: UTF8.self) : q).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            out[kv[0]] = kv.count > 1 ? kv[1].removingPercentEncoding : ""
        }
        return out
    }

    @Test func validityIsTheWholeMinutesLeftAtLeastOne() {
        #expect(ValidityPeriod.minutesLeft(until: nil, now: Self.now) == nil)
        #expect(ValidityPeriod.minutesLeft(until: Self.now + 30_000, now: Self.now) == 1)
        #expect(ValidityPeriod.minutesLeft(until: Self.now + 119_999, now: Self.now) == 1)
        #expect(ValidityPeriod.minutesLeft(until: Self.now + 120_000, now: Self.now) == 2)
        #expect(ValidityPeriod.minutesLeft(until: Self.now + 90 * 60_000, now: Self.now) == 90)
        #expect(ValidityPeriod.minutesLeft(until: Self.now - 5_000, now: Self.now) == 1)
    }

    @Test func kannelGetCarriesSmscPriorityDeferredAndValidity() throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let q = query(kannel(engine, KannelOptions(smsc: "smpp-vnpt", priority: 3, deferredMinutes: 10)).request(for: sms()))
        #expect(q["smsc"] == "smpp-vnpt" && q["priority"] == "3" && q["deferred"] == "10")
        #expect(q["validity"] == "45")
        #expect(q["username"] == "loa" && q["dlr-mask"] == "31")
        // Defaults: none of the options but the validity; no deadline, no validity; validity off.
        let plain = query(kannel(engine, KannelOptions()).request(for: sms()))
        #expect(plain["smsc"] == nil && plain["priority"] == nil && plain["deferred"] == nil && plain["validity"] == "45")
        #expect(query(kannel(engine, KannelOptions()).request(for: sms(validUntil: nil)))["validity"] == nil)
        #expect(query(kannel(engine, KannelOptions(validity: false)).request(for: sms()))["validity"] == nil)
    }

    @Test func kannelPostCarriesThemAsTheHeadersSmsboxReads() throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let r = kannel(engine, post: true, KannelOptions(smsc: "smpp", priority: 1, deferredMinutes: 5)).request(for: sms())
        let h = Dictionary(uniqueKeysWithValues: r.headers.map { ($0.name, $0.value) })
        #expect(h["X-Kannel-SMSC"] == "smpp" && h["X-Kannel-Priority"] == "1" && h["X-Kannel-Deferred"] == "5")
        #expect(h["X-Kannel-Validity"] == "45")
        #expect(!r.url.contains("?"))
        let off = kannel(engine, post: true, KannelOptions(validity: false)).request(for: sms())
        #expect(!off.headers.contains { $0.name.hasPrefix("X-Kannel-Validity") || $0.name == "X-Kannel-SMSC" })
    }

    @Test func jasminPassesValidityPeriodInMinutesOnGetAndPost() throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        #expect(query(jasmin(engine).request(for: sms()))["validity-period"] == "45")
        #expect(query(jasmin(engine, post: true).request(for: sms()))["validity-period"] == "45")
        #expect(query(jasmin(engine, JasminOptions(validity: false)).request(for: sms()))["validity-period"] == nil)
        #expect(query(jasmin(engine).request(for: sms(validUntil: nil)))["validity-period"] == nil)
    }

    @Test func jasminCountsPartsItsWay() {
        #expect(JasminAdapter.jasminParts(String(repeating: "a", count: 160), encoding: .gsm7) == 1)
        #expect(JasminAdapter.jasminParts(String(repeating: "a", count: 161), encoding: .gsm7) == 2)
        #expect(JasminAdapter.jasminParts(String(repeating: "a", count: 765), encoding: .gsm7) == 5)
        #expect(JasminAdapter.jasminParts(String(repeating: "a", count: 766), encoding: .gsm7) == 6)
        #expect(JasminAdapter.jasminParts(String(repeating: "€", count: 80), encoding: .gsm7) == 1)
        #expect(JasminAdapter.jasminParts(String(repeating: "ệ", count: 70), encoding: .ucs2) == 1)
        #expect(JasminAdapter.jasminParts(String(repeating: "ệ", count: 335), encoding: .ucs2) == 5)
        #expect(JasminAdapter.jasminParts(String(repeating: "ệ", count: 336), encoding: .ucs2) == 6)
        // Jasmin counts 306 bytes as 2 parts where Loa, keeping `€` whole, makes 3.
        let cut = String(repeating: "a", count: 152) + "€" + String(repeating: "b", count: 152)
        #expect(JasminAdapter.jasminParts(cut, encoding: .gsm7) == 2)
        #expect(SMSText.split(cut, encoding: .gsm7).count == 3)
    }

    @Test func anEscapeAtJasminsCutGoesAsUCS2AndOtherTextsStayGSM7() throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        // The escape of `€` is byte 153 (index 152): Jasmin's first part would end with it.
        for ext in ["€", "[", "]", "{", "}", "~", "^", "|", "\\"] {
            let text = String(repeating: "a", count: 152) + ext + String(repeating: "b", count: 20)
            #expect(JasminAdapter.escapeCut(text), "\(ext)")
            let q = query(jasmin(engine).request(for: sms(text)))
            #expect(q["coding"] == "8" && q["content"] == nil, "\(ext)")
            #expect(q["hex-content"] == JasminAdapter.utf16BEHex(text))
        }
        // One byte earlier or later the pair is whole in one part; short texts are never cut; the second cut counts too.
        for text in [String(repeating: "a", count: 151) + "€" + String(repeating: "b", count: 20),
                     String(repeating: "a", count: 153) + "€" + String(repeating: "b", count: 20),
                     String(repeating: "a", count: 152) + "€" + "b",
                     String(repeating: "€", count: 80)] {
            #expect(!JasminAdapter.escapeCut(text))
            let q = query(jasmin(engine).request(for: sms(text)))
            #expect(q["coding"] == "0" && q["content"] == text)
        }
        #expect(JasminAdapter.escapeCut(String(repeating: "a", count: 305) + "{" + "z"))
        #expect(!JasminAdapter.escapeCut(String(repeating: "a", count: 304) + "{" + "z"))
    }

    @Test func aMessageLongerThanMaxPartsFailsPermanentlyWithoutBeingSent() async throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        // Nothing listens on the URL's port: a request would be a transport failure, not this refusal.
        let a = jasmin(engine)
        let six = sms(String(repeating: "a", count: 766))
        guard case .permanent(let reason) = await a.send(six) else { Issue.record("6 parts must be refused"); return }
        #expect(reason.contains("6 parts") && reason.contains("at most 5") && reason.contains("max_parts"))
        let started = await withCheckedContinuation { (c: CheckedContinuation<GatewayOutcome, Never>) in a.start(six) { c.resume(returning: $0) } }
        #expect(started == .permanent(reason))
        #expect(a.refusal(for: sms(String(repeating: "a", count: 765))) == nil)
        #expect(jasmin(engine, JasminOptions(maxParts: 6)).refusal(for: six) == nil)
        // Counted as sent: 4 parts in GSM-7, but the escape at Jasmin's first cut makes it UCS-2: 9 parts.
        let escaped = String(repeating: "a", count: 152) + "€" + String(repeating: "b", count: 400)
        guard case .permanent(let why)? = a.refusal(for: sms(escaped)) else { Issue.record("UCS-2 parts must count"); return }
        #expect(why.contains("sent as UCS-2"))
    }
}
