import Foundation
import LoaCore
import Testing

/// The shipped nginx recipe (Deploy/nginx-console.conf) in front of the real binary: Debian's nginx with a
/// self-signed certificate, on loopback ports, the recipe's own text with only its ports, names and certificate paths
/// replaced. Through it: the console and the API over TLS with a Secure cookie, the client's address (not nginx's) in
/// the audit trail, a client-written X-Forwarded-For replaced; /metrics, the probes and the receipt endpoints not
/// exposed on the console's server; receipts through the receipts server only.
@Suite(.ownThreads, .serialized) struct NginxConsoleTests {
    static let nginx = "/usr/sbin/nginx"
    static let host = "console.example.gov.vn"
    static let receiptsHost = "receipts.example.gov.vn"

    /// `curl` with the test certificate as the only CA; `--interface` picks the client's loopback address.
    static func curl(_ work: WorkDir, _ url: String, port: Int, host: String = host, from: String = "127.0.0.1",
                     _ extra: [String] = []) throws -> (status: Int, headers: String, body: String) {
        let r = try run("/usr/bin/curl", ["-sS", "-i", "--max-time", "20", "--cacert", work.file("tls.crt"), "--interface", from,
                                          "--resolve", "\(host):\(port):127.0.0.1", url] + extra)
        let text = r.output.replacingOccurrences(of: "\r\n", with: "\n")
        let parts = text.components(separatedBy: "\n\n")
        let head = parts.first ?? ""
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, head.lowercased(), parts.dropFirst().joined(separator: "\n\n"))
    }

    @Test(.timeLimit(.minutes(3)), .enabled(if: FileManager.default.isExecutableFile(atPath: nginx)))
    func theConsoleBehindNginxOverTLS() async throws {
        let work = WorkDir("nginx")
        let receipts = freePort()
        let loa = try LoaDaemonProcess(work: work, carrierURL: "http://127.0.0.1:9/cgi-bin/sendsms", username: "u", password: "p",
                                       extraConfig: """
                                           "receipts_listen": { "address": "127.0.0.1", "port": \(receipts) },
                                           "trusted_proxies": ["127.0.0.1"], "console": { "secure_cookie": true }
                                           """)
        try await loa.start()
        defer { _ = loa.stop() }
        _ = try AccessTests.user(loa, "oanh", "operator")

        let cert = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=\(Self.host)",
                                                "-addext", "subjectAltName=DNS:\(Self.host),DNS:\(Self.receiptsHost)",
                                                "-keyout", work.file("tls.key"), "-out", work.file("tls.crt")])
        try #require(cert.status == 0, "\(cert.output)")
        let (http, https, receiptsTLS) = (freePort(), freePort(), freePort())
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var recipe = try String(contentsOf: root.appendingPathComponent("Deploy/nginx-console.conf"), encoding: .utf8)
        for (from, to) in [("127.0.0.1:8780", "127.0.0.1:\(loa.port)"), ("127.0.0.1:8781", "127.0.0.1:\(receipts)"),
                           ("listen 80;", "listen 127.0.0.1:\(http);"), ("listen 443 ssl", "listen 127.0.0.1:\(https) ssl"),
                           ("listen 8443 ssl", "listen 127.0.0.1:\(receiptsTLS) ssl"),
                           ("/etc/ssl/loa/console.crt", work.file("tls.crt")), ("/etc/ssl/loa/console.key", work.file("tls.key"))] {
            #expect(recipe.contains(from), "the recipe no longer has \(from)")
            recipe = recipe.replacingOccurrences(of: from, with: to)
        }
        // IPv6 listeners aside: the test binds loopback ports only.
        recipe = recipe.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("listen [::]") }.joined(separator: "\n")
        work.write("loa-console.conf", recipe)
        for d in ["client", "proxy", "fastcgi", "uwsgi", "scgi"] { try FileManager.default.createDirectory(atPath: work.file("tmp/\(d)"), withIntermediateDirectories: true) }
        work.write("nginx.conf", """
            daemon off;
            master_process off;
            pid \(work.file("nginx.pid"));
            error_log \(work.file("nginx-error.log")) warn;
            events { worker_connections 64; }
            http {
                access_log off;
                client_body_temp_path \(work.file("tmp/client"));
                proxy_temp_path \(work.file("tmp/proxy"));
                fastcgi_temp_path \(work.file("tmp/fastcgi"));
                uwsgi_temp_path \(work.file("tmp/uwsgi"));
                scgi_temp_path \(work.file("tmp/scgi"));
                include \(work.file("loa-console.conf"));
            }
            """)
        let check = try run(Self.nginx, ["-t", "-q", "-c", work.file("nginx.conf")])
        try #require(check.status == 0, "nginx -t: \(check.output)")
        let server = try Child(Self.nginx, ["-c", work.file("nginx.conf")], log: work.file("nginx.out"))
        defer { server.stop() }
        let base = "https://\(Self.host):\(https)"
        try await poll(20, every: 0.1, "nginx to answer") { try Self.curl(work, base + "/console/", port: https).status == 200 }

        // The console's page through TLS, with Loa's headers and nginx's HSTS; plain http is sent to https.
        let page = try Self.curl(work, base + "/console/", port: https)
        #expect(page.headers.contains("content-security-policy: default-src 'self'; frame-ancestors 'none'"), "\(page.headers)")
        #expect(page.headers.contains("strict-transport-security: max-age=31536000"), "\(page.headers)")
        let plain = try Self.curl(work, "http://\(Self.host):\(http)/console/", port: http)
        #expect(plain.status == 301 && plain.headers.contains("location: https://\(Self.host)/console/"), "\(plain.headers)")

        // A login from 127.0.0.9 (an address no other test uses) that writes its own X-Forwarded-For: a Secure cookie, and the audit trail names
        // 127.0.0.9, the address nginx saw (not nginx's 127.0.0.1, not the written one).
        let login = try Self.curl(work, base + "/api/v1/session", port: https, from: "127.0.0.9",
                                  ["-X", "POST", "-H", "Content-Type: application/json", "-H", "X-Forwarded-For: 203.0.113.5",
                                   "--data-binary", #"{"user": "oanh", "password": "\#(AccessTests.password)"}"#])
        #expect(login.status == 200, "\(login.headers)\n\(login.body)")
        let setCookie = login.headers.split(separator: "\n").first { $0.hasPrefix("set-cookie:") }.map(String.init) ?? ""
        #expect(setCookie.contains("httponly") && setCookie.contains("samesite=strict") && setCookie.hasSuffix("; secure"), "\(setCookie)")
        let cookie = String(setCookie.dropFirst("set-cookie: ".count).split(separator: ";").first ?? "")
        let campaigns = try Self.curl(work, base + "/api/v1/campaigns", port: https, from: "127.0.0.9", ["-H", "Cookie: \(cookie)"])
        #expect(campaigns.status == 200, "\(campaigns.headers)\n\(campaigns.body)")
        let rows = try await AccessTests.audit(loa, token: loa.token).filter { $0["action"] as? String == "session.login" }
        #expect(rows.count == 1 && rows.first?["address"] as? String == "127.0.0.9", "\(rows)")

        // Not exposed on the console's server: metrics, probes, receipts. Loa itself still serves them on loopback.
        for path in ["/metrics", "/healthz", "/readyz", "/dlr/kannel?k=x", "/mo/kannel?k=x", "/api/v1/../../metrics", "/api/v1/%2e%2e/%2e%2e/metrics"] {
            let r = try Self.curl(work, base + path, port: https, ["--path-as-is"])
            #expect(r.status == 404 && !r.body.contains("loa_"), "\(path): \(r.status) \(r.body.prefix(200))")
        }
        #expect(try await loa.api("/metrics").status == 200)
        // The receipts server reaches the receipt endpoints (a wrong secret: Loa's own 401) and nothing else.
        let rbase = "https://\(Self.receiptsHost):\(receiptsTLS)"
        let dlr = try Self.curl(work, rbase + "/dlr/kannel?k=wrong", port: receiptsTLS, host: Self.receiptsHost)
        #expect(dlr.status == 401, "\(dlr.status) \(dlr.body)")
        #expect(try Self.curl(work, rbase + "/api/v1/campaigns", port: receiptsTLS, host: Self.receiptsHost).status == 404)
    }
}
