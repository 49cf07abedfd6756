import LoaCarriers
import LoaServer
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension HTTPEngineTests {
    @Test func streamedUploadOf20MiB() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let size = 20 << 20
        let file = makeTemporaryFile(size: size)
        defer { unlink(file.path) }

        let response = try await f.engine.perform(HTTPRequest(method: "PUT", url: f.url("/upload"), timeout: 60), uploadFile: file.path)
        #expect(response.status == 200)
        #expect(response.bodyText == "\(size) \(file.checksum)")
        let report = try #require(f.service.upload.value.withLock { $0 })
        #expect(report.bytes == size)
        #expect(report.checksum == file.checksum)
        // Never held whole: it arrived in many pieces of at most the connection buffer.
        #expect(report.pieces > 100)
        #expect(report.largestPiece <= 64 << 10)
        #expect(f.service.lastHead?.headers["content-length"] == "\(size)")
    }

    @Test func streamedUploadChunked() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let size = 3 << 20 + 17
        let file = makeTemporaryFile(size: size)
        defer { unlink(file.path) }

        let request = HTTPRequest(method: "PUT", url: f.url("/upload"), headers: [HTTPHeader("Transfer-Encoding", "chunked")])
        let response = try await f.engine.perform(request, uploadFile: file.path)
        #expect(response.bodyText == "\(size) \(file.checksum)")
        #expect(f.service.lastHead?.headers["transfer-encoding"] == "chunked")
        #expect(f.service.lastHead?.headers["content-length"] == nil)
    }

    @Test func sinkCanStopReading() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        let file = makeTemporaryFile(size: 512 << 10)
        defer { unlink(file.path) }
        let response = try await f.engine.perform(HTTPRequest(method: "PUT", url: f.url("/limited")), uploadFile: file.path)
        #expect(response.status == 413)
        #expect(response.bodyText == "sink full")
    }

    @Test func missingUploadFileIsAReadError() async throws {
        let f = try EngineServerFixture()
        defer { f.close() }
        await #expect(throws: TransportError.self) {
            _ = try await f.engine.perform(HTTPRequest(method: "PUT", url: f.url("/upload")), uploadFile: "/nonexistent/file")
        }
        do {
            _ = try await f.engine.perform(HTTPRequest(method: "PUT", url: f.url("/upload")), uploadFile: "/nonexistent/file")
        } catch {
            guard case .other(let code, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(code == 26)
        }
    }
}
