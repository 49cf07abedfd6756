import LoaCarriers
import LoaServer
import Testing

extension HTTPEngineTests {
    /// libcurl resends by itself a request whose kept-alive connection closed before any answer. The
    /// server here received the whole second request and closed without answering: a plain request comes
    /// back answered because libcurl sent it twice (the hazard), an at-most-once one fails as a lost
    /// connection and the server saw it once.
    @Test(arguments: ["GET", "POST"])
    func atMostOnceRequestIsNeverResentByLibcurl(method: String) async throws {
        for atMostOnce in [false, true] {
            let f = try EngineServerFixture(maxConnectionsPerHost: 1)
            defer { f.close() }
            func request() -> HTTPRequest {
                HTTPRequest(method: method, url: f.url("/drop-second?token=SECRET"), body: method == "POST" ? Array("to=1&text=hi".utf8) : [])
                    .atMostOnce(atMostOnce)
            }
            let first = try await f.engine.perform(request())
            #expect(first.status == 202 && first.bodyText == "accepted 1")
            let second: Result<HTTPResponse, TransportError>
            do throws(TransportError) {
                second = .success(try await f.engine.perform(request()))
            } catch {
                second = .failure(error)
            }
            if atMostOnce {
                guard case .failure(.connectionLost(let message)) = second else {
                    Issue.record("\(method) at most once: expected a lost connection, got \(second)")
                    continue
                }
                #expect(message.contains("not resent") && !message.contains("SECRET"))
                #expect(f.service.dropSecondCalls.load(ordering: .sequentiallyConsistent) == 2)
            } else {
                // The hazard the option exists for: the server got the request twice.
                #expect((try? second.get())?.bodyText == "accepted 3")
                #expect(f.service.dropSecondCalls.load(ordering: .sequentiallyConsistent) == 3)
            }
            // The engine goes on: the next request gets a fresh connection and an answer.
            let third = try await f.engine.perform(request())
            #expect(third.status == 202)
        }
    }
}
