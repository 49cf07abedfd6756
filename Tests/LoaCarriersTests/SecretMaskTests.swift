import Foundation
import LoaCarriers
import LoaCore
import Testing

@Suite(.serialized) struct SecretMaskTests {
    static let password = "Pa ss/w0rd+9!"
    static let receiptSecret = "receipt-secret-0123456789"
    static let proxy = "http://proxyuser:prox%40pass@127.0.0.1:3128"

    /// Every form a gateway could echo a secret in.
    static func echoes(_ secret: String) -> [String] {
        let escaped = URLQuery.escape(secret)
        return [secret, escaped, lowerHex(escaped), escaped.replacingOccurrences(of: "%20", with: "+"),
                secret.replacingOccurrences(of: "/", with: "\\/")]
    }

    /// `%2F` → `%2f`, the letters of the value itself unchanged.
    static func lowerHex(_ s: String) -> String {
        var out = "", left = 0
        for ch in s {
            if ch == "%" { left = 2; out.append(ch) } else if left > 0 { left -= 1; out += ch.lowercased() } else { out.append(ch) }
        }
        return out
    }

    @Test func masksEveryFormOfEverySecret() {
        let mask = SecretMask(secrets: [Self.password, Self.receiptSecret], proxy: Self.proxy)
        for secret in [Self.password, Self.receiptSecret, "prox@pass", "prox%40pass", "proxyuser:prox%40pass"] {
            for form in Self.echoes(secret) {
                let out = mask.apply("before \(form) after")
                #expect(out == "before *** after", "\(form) → \(out)")
            }
        }
        // A secret followed by a combining mark is still found (bytes, not Characters).
        #expect(mask.apply("x\(Self.password)\u{301}y") == "x***\u{301}y")
        #expect(mask.apply("nothing to hide") == "nothing to hide")
        // Short values are not masked: they would garble every answer.
        #expect(SecretMask(secrets: ["ab"]).apply("abc") == "abc")
    }

    func answer(_ body: String, status: Int = 400) -> Result<HTTPResponse, TransportError> {
        .success(HTTPResponse(status: status, body: Array(body.utf8)))
    }

    /// The answer a Kannel-like gateway gives when it echoes the request: the password in three forms, and the
    /// receipt secret from the dlr-url.
    var echo: String {
        "pw=\(Self.password) q=password=\(URLQuery.escape(Self.password))&x=\(Self.lowerHex(URLQuery.escape(Self.password))) dlr=\(Self.receiptSecret)"
    }

    func expectClean(_ o: GatewayOutcome, _ adapter: String) {
        let text = "\(o)"
        for form in Self.echoes(Self.password) + [Self.receiptSecret] {
            #expect(!text.contains(form), "\(adapter): \(form) in \(text)")
        }
        #expect(text.contains("pw=***"), "\(adapter): \(text)")
    }

    @Test func everyAdapterMasksItsSecretsInEveryAnswer() throws {
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let m = OutgoingSMS(id: 1, from: "LOA", to: "+84912345678", text: "Chào", encoding: .ucs2, segments: 1,
                            receiptURL: "http://127.0.0.1/dlr/k?k=\(Self.receiptSecret)&id=1")
        let kannel = KannelAdapter(name: "k", sendsmsURL: "http://127.0.0.1:1/cgi-bin/sendsms", username: "loa", password: Self.password,
                                   timeout: 5, engine: engine, proxy: Self.proxy, receiptSecret: Self.receiptSecret)
        let jasmin = JasminAdapter(name: "j", sendURL: "http://127.0.0.1:1/send", username: "loa", password: Self.password,
                                   timeout: 5, engine: engine, proxy: Self.proxy, receiptSecret: Self.receiptSecret)
        let generic = GenericHTTPAdapter(name: "g", spec: try genericSpec(#"{ url: "http://127.0.0.1:1/send?key={{secret.k}}&to={{to}}" }"#),
                                         secrets: ["k": Self.password], timeout: 5, engine: engine, proxy: Self.proxy,
                                         receiptSecret: Self.receiptSecret)
        for status in [202, 400, 401, 503, 500] {
            expectClean(kannel.outcome(of: answer(echo, status: status), for: m), "kannel \(status)")
            expectClean(jasmin.outcome(of: answer(echo, status: status), for: m), "jasmin \(status)")
            expectClean(generic.outcome(of: answer(echo, status: status), for: m), "generic \(status)")
        }
        // A secret that straddles the 200 characters an answer is cut to is masked before the cut.
        let long = String(repeating: "x", count: 190) + " " + Self.password
        for o in [kannel.outcome(of: answer(long), for: m), jasmin.outcome(of: answer(long), for: m)] {
            #expect(!"\(o)".contains("Pa ss/w"), "\(o)")
        }
        // Transport failures (libcurl's messages name the proxy) are masked too.
        let failure = kannel.outcome(of: .failure(.couldNotConnect("proxy proxyuser:prox%40pass refused")), for: m)
        #expect(!"\(failure)".contains("prox%40pass"), "\(failure)")
    }
}
