import LoaCarriers
import LoaServer
import Testing

extension HTTPEngineTests {
    @Test func getRoundTrip() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let response = try await f.engine.perform(HTTPRequest(url: f.url("/hello")))
        #expect(response.status == 200)
        #expect(response.bodyText == "hello")
        #expect(response.header("content-type") == "text/plain; charset=utf-8")
        #expect(f.service.lastHead?.remoteAddress == "127.0.0.1")

        let missing = try await f.engine.perform(HTTPRequest(url: f.url("/nowhere")))
        #expect(missing.status == 404)
        #expect(missing.header("Content-Type") == "application/json")
        #expect(f.engine.inFlight == 0)
    }

    @Test func postAndPutRoundTrip() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let body = Array("{\"to\":\"+15550100\",\"text\":\"héllo\"}".utf8)
        let post = try await f.engine.perform(HTTPRequest(
            method: "POST", url: f.url("/echo"),
            headers: [HTTPHeader("Content-Type", "application/json"), HTTPHeader("X-Request-Id", "abc")], body: body))
        #expect(post.status == 201)
        #expect(post.body == body)
        #expect(post.header("x-method") == "POST")
        let head = try #require(f.service.lastHead)
        #expect(head.headers["content-type"] == "application/json")
        #expect(head.headers["x-request-id"] == "abc")
        #expect(head.headers["content-length"] == "\(body.count)")

        let put = try await f.engine.perform(HTTPRequest(method: "PUT", url: f.url("/echo"), body: [1, 2, 3]))
        #expect(put.status == 201 && put.body == [1, 2, 3] && put.header("X-Method") == "PUT")
        #expect(f.service.lastHead?.headers["content-type"] == nil)  // libcurl's form default suppressed

        let delete = try await f.engine.perform(HTTPRequest(method: "DELETE", url: f.url("/echo")))
        #expect(delete.status == 201 && delete.body.isEmpty && delete.header("X-Method") == "DELETE")
    }

    /// A request that names its headers gets them from libcurl after the answer (no header callback), exactly
    /// those, repeated ones in order; one that does not gets all of them. Both kinds alternate on one reused
    /// handle, and no header line ends up in the body.
    @Test func namedResponseHeadersAndAllHeadersOnOneHandle() async throws {
        let f = try EngineServerFixture(maxConnectionsPerHost: 1)
        defer { f.close() }
        for _ in 0..<2 {
            let named = try await f.engine.perform(HTTPRequest(url: f.url("/headers")).readingHeaders(["x-a", "RETRY-AFTER", "X-Missing"]))
            #expect(named.status == 503 && named.bodyText == "busy")
            #expect(named.headers.map(\.value) == ["1", "3", "7"])
            #expect(named.header("Retry-After") == "7" && named.header("X-B") == nil && named.header("Content-Length") == nil)

            let all = try await f.engine.perform(HTTPRequest(url: f.url("/headers")))
            #expect(all.status == 503 && all.bodyText == "busy")
            #expect(all.header("X-B") == "2" && all.header("retry-after") == "7" && all.header("Content-Length") == "4")
            #expect(all.headers.filter { $0.name.lowercased() == "x-a" }.map(\.value) == ["1", "3"])
        }
    }

    /// A header that would split the request (CR, LF, NUL in a value; a name that is not a token) or a method
    /// that is not a token fails the request before anything is sent.
    @Test func unsafeHeadersAndMethodsAreRefusedUnsent() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let unsafe: [HTTPRequest] = [
            HTTPRequest(url: f.url("/hello"), headers: [HTTPHeader("X-To", "+84912345678\r\nX-Injected: 1")]),
            HTTPRequest(url: f.url("/hello"), headers: [HTTPHeader("X-To", "a\nb")]),
            HTTPRequest(url: f.url("/hello"), headers: [HTTPHeader("X-To", "a\u{0}b")]),
            HTTPRequest(url: f.url("/hello"), headers: [HTTPHeader("X To", "1")]),
            HTTPRequest(url: f.url("/hello"), headers: [HTTPHeader("X-Tó", "1")]),
            HTTPRequest(url: f.url("/hello"), headers: [HTTPHeader("", "1")]),
            HTTPRequest(method: "GE T", url: f.url("/hello")),
        ]
        for request in unsafe {
            await #expect(throws: TransportError.self) { try await f.engine.perform(request) }
        }
        #expect(f.service.heads.withLock { $0.count } == 0)
        // Every token character is accepted.
        let ok = try await f.engine.perform(HTTPRequest(url: f.url("/hello"), headers: [HTTPHeader("X-a0!#$%&'*+.^_`|~Z9", "v: ok; \"q\"")]))
        #expect(ok.status == 200 && f.service.lastHead?.headers["x-a0!#$%&'*+.^_`|~z9"] == "v: ok; \"q\"")
    }

    @Test func chunkedRequestBodies() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let body = [UInt8]((0..<100_000).map { UInt8(truncatingIfNeeded: $0) })
        let response = try await f.engine.perform(HTTPRequest(
            method: "POST", url: f.url("/echo"), headers: [HTTPHeader("Transfer-Encoding", "chunked")], body: body))
        #expect(response.status == 201)
        #expect(response.body == body)
        #expect(f.service.lastHead?.headers["transfer-encoding"] == "chunked")

        let raw = rawExchange(port: f.server.port, """
            POST /echo HTTP/1.1\r
            Host: test\r
            Transfer-Encoding: chunked\r
            Connection: close\r
            \r
            5\r
            hello\r
            6\r
             world\r
            0\r
            \r

            """)
        #expect(raw.hasPrefix("HTTP/1.1 201"))
        #expect(raw.hasSuffix("\r\n\r\nhello world"))
    }

    @Test func malformedRequestsGet400() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let malformed = [
            "GET /hello HTTP/1.1\r\nHost: test\r\nthis is not a header\r\nConnection: close\r\n\r\n",
            "GET /hello HTTP/1.1\r\nHost: test\r\nContent-Length: abc\r\nConnection: close\r\n\r\n",
            "GET /hello\r\n\r\n",
            "\u{1}\u{2} \u{3}\r\n\r\n",
        ]
        for request in malformed {
            let answer = rawExchange(port: f.server.port, request)
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(request.debugDescription) got \(answer.prefix(40).debugDescription)")
        }
        #expect(f.service.heads.withLock { $0.isEmpty })
    }

    @Test func queryAndPathDecoding() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let query = "name=J%C3%BCrgen&plus=a%2Bb&space=a+b&mixed=%E2%9C%93+ok%21&dup=1&dup=2&empty=&flag"
        let response = try await f.engine.perform(HTTPRequest(url: f.url("/q%20path/%C3%A9+x?" + query)))
        #expect(response.status == 404)
        let head = try #require(f.service.lastHead)
        #expect(head.path == "/q path/é+x")
        #expect(head.query["name"] == "Jürgen")
        #expect(head.query["plus"] == "a+b")
        #expect(head.query["space"] == "a b")
        #expect(head.query["mixed"] == "✓ ok!")
        #expect(head.query["dup"] == "2")
        #expect(head.query["empty"] == "")
        #expect(head.query["flag"] == "")
        let pairs = try #require(head.rawQuery)
        #expect(pairs.filter { $0.0 == "dup" }.map(\.1) == ["1", "2"])
        #expect(pairs.count == 8)
    }

    @Test func twoThousandConcurrentRequests() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let engine = f.engine
        let count = 2_000
        var seen = Set<Int>()
        try await withThrowingTaskGroup(of: (Int, HTTPResponse).self) { group in
            for i in 0..<count {
                let url = f.url("/echo?i=\(i)")
                group.addTask { (i, try await engine.perform(HTTPRequest(url: url))) }
            }
            for try await (i, response) in group {
                #expect(response.status == 200)
                #expect(response.bodyText == "\(i)")
                seen.insert(i)
            }
        }
        #expect(seen.count == count)
        #expect(engine.inFlight == 0)
    }

    @Test func bufferOverLimitGets413WithoutCallingHandler() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let ok = try await f.engine.perform(HTTPRequest(method: "POST", url: f.url("/small"), body: [UInt8](repeating: 1, count: 1024)))
        #expect(ok.status == 200 && ok.bodyText == "1024")
        #expect(f.service.smallHandlerCalls.load(ordering: .relaxed) == 1)

        // Content-Length over the limit: drained and answered, connection kept.
        let over = try await f.engine.perform(HTTPRequest(method: "POST", url: f.url("/small"), body: [UInt8](repeating: 1, count: 4096)))
        #expect(over.status == 413)
        #expect(f.service.lastHead?.headers["expect"] == nil)  // a small body goes without a 100-continue wait
        // Chunked: the limit is found mid-body.
        let chunked = try await f.engine.perform(HTTPRequest(
            method: "POST", url: f.url("/small"), headers: [HTTPHeader("Transfer-Encoding", "chunked")],
            body: [UInt8](repeating: 1, count: 50_000)))
        #expect(chunked.status == 413)
        // Far over: answered before the body ("Expect: 100-continue" from 1 MiB).
        let huge = try await f.engine.perform(HTTPRequest(method: "POST", url: f.url("/small"), body: [UInt8](repeating: 1, count: 3 << 20)))
        #expect(huge.status == 413)
        // Kept for a large body: without it the server closes under a body still being written (broken pipe).
        #expect(f.service.lastHead?.headers["expect"] == "100-continue")
        #expect(f.service.smallHandlerCalls.load(ordering: .relaxed) == 1)

        let after = try await f.engine.perform(HTTPRequest(url: f.url("/hello")))
        #expect(after.status == 200)
    }

    @Test func ipv6Loopback() async throws {
        let service = EchoTestService()
        let server = try HTTPServer(address: "::1", port: 0, service: service)
        defer { server.stop() }
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let response = try await engine.perform(HTTPRequest(url: "http://[::1]:\(server.port)/hello"))
        #expect(response.bodyText == "hello")
        #expect(service.lastHead?.remoteAddress == "::1")
    }

    @Test func invalidAddressIsRejected() throws {
        #expect(throws: HTTPServerError.self) { try HTTPServer(address: "localhost", port: 0, service: EchoTestService()) }
        let taken = try HTTPServer(port: 0, service: EchoTestService())
        defer { taken.stop() }
        #expect {
            try HTTPServer(port: taken.port, service: EchoTestService())
        } throws: { error in
            guard case HTTPServerError.startFailed(let message) = error else { return false }
            return message.contains("\(taken.port)")
        }
    }
}
