import LoaCarriers
import LoaServer
import Testing

extension HTTPEngineTests {
    /// libcurl resends by itself a request whose kept-alive connection closed before any answer. The
    /// server here received the whole second request and closed without answering: a plain request comes
    /// back answered because libcurl sent it twice (the hazard), an at-most-once one fails as a lost
    /// connection and the server saw it once.
    ///
    /// The plain request is the fixture's proof: libcurl must resend it at least once in three tries. Under three CPU
    /// burners libcurl once did not (the server saw 2 calls and the request failed), so one try is not required to.
    @Test(arguments: ["GET", "POST"])
    func atMostOnceRequestIsNeverResentByLibcurl(method: String) async throws {
        var plainResent = 0
        for atMostOnce in [false, false, false, true] where atMostOnce || plainResent == 0 {
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
                // The hazard the option exists for: the server got the request twice, and the answer was the resend's.
                let calls = f.service.dropSecondCalls.load(ordering: .sequentiallyConsistent)
                if calls == 3 {
                    #expect((try? second.get())?.bodyText == "accepted 3")
                    plainResent += 1
                } else {
                    #expect(calls == 2, "libcurl neither resent nor stopped: \(calls) calls, \(second)")
                }
            }
            // The engine goes on: the next request gets a fresh connection and an answer.
            let third = try await f.engine.perform(request())
            #expect(third.status == 202)
        }
        #expect(plainResent == 1, "libcurl never resent the plain request in three tries")
    }
}
