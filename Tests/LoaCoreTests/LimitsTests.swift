import LoaCore
import Testing

/// The rate-limit header dialects, each read the way its providers mean it.
@Suite struct RateLimitHeadersTests {
    func parse(_ headers: [String: String], now: UnixMillis = 1_700_000_000_000) -> RateLimitHeaders {
        RateLimitHeaders.parse(now: now) { name in headers.first { $0.key.lowercased() == name.lowercased() }?.value }
    }

    @Test func retryAfterSecondsAndHTTPDate() {
        #expect(parse(["Retry-After": " 5 "]).waitSeconds == 5)
        #expect(parse(["Retry-After": "0"]).waitSeconds == 0)
        // 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT.
        #expect(parse(["Retry-After": "Tue, 14 Nov 2023 22:14:00 GMT"]).waitSeconds == 40)
        #expect(parse(["Retry-After": "Tuesday, 14-Nov-23 22:14:00 GMT"]).waitSeconds == 40, "RFC 850")
        #expect(parse(["Retry-After": "Tue Nov 14 22:14:00 2023"]).waitSeconds == 40, "asctime")
        #expect(parse(["Retry-After": "Tue, 14 Nov 2023 22:00:00 GMT"]).waitSeconds == 0, "a date past is now")
        #expect(parse(["Retry-After": "soon"]).waitSeconds == nil)
        #expect(parse([:]) == RateLimitHeaders())
    }

    @Test func resetAsSecondsEpochSecondsOrEpochMilliseconds() {
        #expect(parse(["X-RateLimit-Reset": "17"]).waitSeconds == 17, "seconds from now (Helix ALM, GitLab)")
        #expect(parse(["X-Rate-Limit-Reset": "1700000060"]).waitSeconds == 60, "Unix seconds (SpeedSMS, GitHub, SendGrid)")
        #expect(parse(["X-RateLimit-Reset": "1700000060000"]).waitSeconds == 60, "Unix milliseconds")
        #expect(parse(["X-RateLimit-Reset": "1699999000"]).waitSeconds == 0, "a reset past is now")
        #expect(parse(["X-RateLimit-Reset": "Tue, 14 Nov 2023 22:14:00 GMT"]).waitSeconds == 40)
        #expect(parse(["RateLimit-Reset": "9"]).waitSeconds == 9)
        #expect(RateLimitHeaders.reset("999999999", nowSeconds: 1_700_000_000) == 999_999_999, "below 1e9: a delta")
    }

    @Test func ietfRateLimitFieldsInBothForms() {
        // Drafts 08 and later: a structured list of policies with r (remaining) and t (seconds to reset).
        var h = parse(["RateLimit": "\"default\";r=0;t=30", "RateLimit-Policy": "\"default\";q=100;w=60"])
        #expect(h.waitSeconds == 30 && h.remaining == 0 && h.limit == 100 && h.windowSeconds == 60)
        h = parse(["RateLimit": "\"default\";r=5;t=30"])
        #expect(h.waitSeconds == nil && h.remaining == 5, "requests remain: no wait")
        h = parse(["RateLimit": "\"burst\";r=3;t=1, \"day\";r=0;t=3600"])
        #expect(h.waitSeconds == 3600 && h.remaining == 0, "the exhausted policy decides")
        // Drafts up to 07: a dictionary, and separate fields.
        h = parse(["RateLimit": "limit=10, remaining=0, reset=12"])
        #expect(h.waitSeconds == 12 && h.limit == 10)
        #expect(parse(["RateLimit": "limit=10, remaining=3, reset=12"]).waitSeconds == nil)
        #expect(parse(["RateLimit-Remaining": "0", "RateLimit-Reset": "4", "RateLimit-Policy": "10;w=1"]).waitSeconds == 4)
        #expect(parse(["RateLimit-Remaining": "2", "RateLimit-Reset": "4"]).waitSeconds == nil)
    }

    @Test func retryAfterWinsOverAReset() {
        #expect(parse(["Retry-After": "2", "X-RateLimit-Reset": "1700000060"]).waitSeconds == 2)
    }

    @Test func httpDateDaysFromCivil() {
        #expect(HTTPDate.parse("Thu, 01 Jan 1970 00:00:00 GMT") == 0)
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.parse("Tue, 29 Feb 2028 12:00:00 GMT") == 1_835_438_400)
        #expect(HTTPDate.parse("06 Nov 1994") == nil, "no time")
    }

    /// A gateway's numbers are checked before any arithmetic: huge or negative date parts, `nan` and `inf` are
    /// not waits (each of these trapped or passed NaN on before).
    @Test func hostileValuesAreNotWaits() {
        #expect(HTTPDate.parse("Sun, 06 Nov 999999999999999999 08:49:37 GMT") == nil)
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 -99999999999999999:00:00 GMT") == nil)
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:-1:00 GMT") == nil)
        #expect(parse(["Retry-After": "Sun, 06 Nov 999999999999999999 08:49:37 GMT"]).waitSeconds == nil)
        #expect(parse(["RateLimit-Reset": "nan"]).waitSeconds == nil)
        #expect(parse(["RateLimit-Reset": "inf"]).waitSeconds == nil)
        #expect(parse(["RateLimit": "limit=1, remaining=0, reset=nan"]).waitSeconds == nil)
        #expect(parse(["RateLimit": "\"p\";r=0;t=inf"]).waitSeconds == nil)
    }
}

/// The four limits of a carrier held apart, on a manual clock.
@Suite struct CarrierPacerTests {
    /// Runs the pacer `seconds` long against an endless queue, each request answered at once; returns the
    /// messages and requests started and the batch sizes.
    func run(_ p: inout CarrierPacer, seconds: Int, queue: Int = .max, stepMillis: Int64 = 5) -> (messages: Int, requests: Int, batches: [Int]) {
        var messages = 0
        var requests = 0
        var batches: [Int] = []
        var left = queue
        var t: UnixMillis = 0
        while t < Int64(seconds) * 1000 {
            if case .claim(let n, let k) = p.decide(now: t) {
                let got = min(n, left)
                left -= got
                let used = (got + p.batchMax - 1) / p.batchMax
                p.settle(granted: (n, k), used: (got, used), now: t)
                var rest = got
                for _ in 0..<used {
                    let size = min(rest, p.batchMax)
                    batches.append(size)
                    rest -= size
                    p.finished()
                }
                messages += got
                requests += used
            }
            t += stepMillis
        }
        return (messages, requests, batches)
    }

    @Test func requestLimitedBatchesFillToTheMaximum() {
        // The issue's case: 2 requests a second, batch.max 100, a generous message rate.
        var p = CarrierPacer(rate: 1000, requestsPerSecond: 2, maxInFlight: 8, batchMax: 100, now: 0)
        let r = run(&p, seconds: 10)
        #expect(r.requests <= 21, "2 requests a second (one at start): \(r.requests)")
        #expect(r.batches.allSatisfy { $0 == 100 }, "every batch full: \(Set(r.batches))")
        #expect(r.messages >= 1900, "about 200 recipients a second: \(r.messages)")
    }

    @Test func messageLimitedBatchesHoldTheMessageRate() {
        // 50 messages a second, batches of up to 100: a second's messages per request, never over the rate.
        var p = CarrierPacer(rate: 50, maxInFlight: 8, batchMax: 100, now: 0)
        #expect(p.batchTarget == 50)
        let r = run(&p, seconds: 10)
        #expect(r.messages <= 50 * 10 + 50 && r.messages >= 450, "\(r.messages)")
        #expect(r.batches.allSatisfy { $0 == 50 }, "\(Set(r.batches))")
    }

    @Test func aShortQueueDoesNotWaitForAFullBatch() {
        var p = CarrierPacer(rate: 1000, requestsPerSecond: 2, maxInFlight: 8, batchMax: 100, now: 0)
        guard case .claim(let n, let k) = p.decide(now: 0) else { Issue.record("a full bucket claims"); return }
        p.settle(granted: (n, k), used: (7, 1), now: 0)  // the queue held 7
        p.finished()
        #expect(p.queueShort)
        // The next request goes as soon as the request rate allows, with what tokens there are.
        guard case .wait(let until?) = p.decide(now: 100) else { Issue.record("the request rate waits"); return }
        #expect(until == 500)
        guard case .claim(let m, _) = p.decide(now: 500) else { Issue.record("claims at 500 ms"); return }
        #expect(m == 100, "the bucket refilled meanwhile (tokens given back): \(m)")
        p.settle(granted: (m, 1), used: (m, 1), now: 500)
        p.finished()
        #expect(!p.queueShort, "a full claim: the queue is long again")
        // Message-limited (100/s, batches of 50): a batch waits to fill while the queue is long ...
        var q = CarrierPacer(rate: 100, maxInFlight: 8, batchMax: 50, now: 0)
        guard case .claim(let a, let ak) = q.decide(now: 0) else { Issue.record("a full bucket claims"); return }
        #expect(a == 50)
        q.settle(granted: (a, ak), used: (a, ak), now: 0)
        let lingering = q.decide(now: 100)
        #expect(lingering == .wait(until: 500), "50 tokens at 100/s")
        // ... and goes with what there is once a claim came back short.
        guard case .claim(let b, let bk) = q.decide(now: 500) else { Issue.record("claims"); return }
        q.settle(granted: (b, bk), used: (5, 1), now: 500)
        guard case .claim(let c, _) = q.decide(now: 600) else { Issue.record("a short queue does not wait for a full batch"); return }
        #expect(c == 50, "the 45 given back and 10 accrued, capped at the burst: \(c)")
        q.workArrived()
        #expect(!q.queueShort)
    }

    @Test func throttlingARequestLimitedCarrierLowersRequestsNotBatchSize() {
        // No stated request limit; the gateway allows 2 requests a second and throttles the rest.
        var p = CarrierPacer(rate: 1000, maxInFlight: 4, batchMax: 100, now: 0)
        var t: UnixMillis = 0
        var batches: [Int] = []
        var windowStart: UnixMillis = 0
        var inWindow = 0
        var accepted = 0
        while t < 60_000 {
            if case .claim(let n, let k) = p.decide(now: t) {
                p.settle(granted: (n, k), used: (n, (n + 99) / 100), now: t)
                for i in 0..<((n + 99) / 100) {
                    let size = min(100, n - i * 100)
                    if t - windowStart >= 1000 { windowStart = t; inWindow = 0 }
                    inWindow += 1
                    p.finished()
                    if inWindow > 2 {
                        p.throttled(retryAfterSeconds: nil, now: t)
                    } else {
                        batches.append(size)
                        if t >= 30_000 { accepted += size }
                    }
                }
            }
            t += 5
        }
        #expect(batches.suffix(20).allSatisfy { $0 == 100 }, "batches stay full: \(batches.suffix(20))")
        #expect(p.allowedRequestRate.map { $0 <= 4 } == true, "the request rate came down: \(String(describing: p.allowedRequestRate))")
        // In the second half it keeps most of what the limit allows (additive probing costs some).
        #expect(accepted >= 30 * 200 * 6 / 10, "recipients accepted in the last 30 s: \(accepted)")
    }

    @Test func throttlingAOneMessageCarrierLowersTheMessageRate() {
        var p = CarrierPacer(rate: 100, maxInFlight: 100, now: 0)
        #expect(!p.adaptsRequests)
        p.throttled(retryAfterSeconds: nil, now: 0)
        _ = p.decide(now: 1)
        #expect(p.allowedRate == 50 && p.allowedRequestRate == nil)
    }

    @Test func retryAfterPausesAndInFlightCountsRequests() {
        var p = CarrierPacer(rate: 1000, requestsPerSecond: 100, maxInFlight: 2, batchMax: 10, now: 0)
        guard case .claim(let n, let k) = p.decide(now: 0) else { Issue.record("claims"); return }
        #expect(k == 1 && n == 10, "one request token at a time")
        p.settle(granted: (n, k), used: (n, k), now: 0)
        guard case .claim(let n2, let k2) = p.decide(now: 10) else { Issue.record("claims"); return }
        p.settle(granted: (n2, k2), used: (n2, k2), now: 10)
        #expect(p.inFlight == 2)
        let d100 = p.decide(now: 100)
        #expect(d100 == .wait(until: nil), "two requests in flight of 2")
        p.finished()
        p.throttled(retryAfterSeconds: 3, now: 100)
        let d200 = p.decide(now: 200)
        #expect(d200 == .wait(until: 3100))
        #expect(p.pausedUntil(now: 200) == 3100)
        guard case .claim = p.decide(now: 3100) else { Issue.record("resumes after the wait"); return }
    }

    @Test func aMinimumBatchGathersBeforeAClaim() {
        // 10 messages a second, batch.min 30: no claim below 30, even with the queue short.
        var p = CarrierPacer(rate: 10, maxInFlight: 4, batchMax: 100, batchMin: 30, now: 0)
        guard case .claim(let n, let k) = p.decide(now: 0) else { Issue.record("a full bucket claims"); return }
        #expect(n == 30)
        p.settle(granted: (n, k), used: (0, 0), now: 0)
        p.finished()
        _ = p.decide(now: 0)  // takes nothing: tokens are back, the queue is short
        if case .claim(let m, let j) = p.decide(now: 0) { p.settle(granted: (m, j), used: (m, j), now: 0) }
        let d1000 = p.decide(now: 1000)
        #expect(d1000 == .wait(until: 3000), "30 tokens again at 10/s")
    }
}

@Suite struct PauseAndTripTests {
    @Test func identicalPermanentAnswersPauseAfterTheThreshold() {
        var f = IdenticalFailures(threshold: 3)
        let route = "HTTP 412: No route found"
        var tripped: [Bool] = []
        for answer in [route, route, nil, route, "HTTP 400: bad number", route, route, route, route] {
            if let answer { tripped.append(f.permanent(answer)) } else { f.accepted() }
        }
        // An acceptance ends a run, another answer starts a new one; the third in a row pauses, once.
        #expect(tripped == [false, false, false, false, false, false, true, false])
        #expect(f.pausedReason == "3 identical permanent answers in a row: HTTP 412: No route found")
        #expect(f.isPaused)
        f.resume()
        #expect(!f.isPaused && f.run == 0)
        var never = IdenticalFailures(threshold: 0)
        var any = false
        for _ in 0..<100 { any = any || never.permanent("x") }
        #expect(!any)
    }

    @Test func aTripOpensTheBreakerAtOnceAndProbesAfterTheCooldown() {
        var b = CircuitBreaker(threshold: 5, baseCooldownMillis: 1000)
        b.trip(now: 0)
        #expect(b.state == .open && b.allowance(now: 500) == 0)
        #expect(b.allowance(now: 1000) == 1, "one probe")
        b.started()
        b.trip(now: 1100)  // the probe was refused too
        #expect(b.state == .open && b.reopensAt() == 3100, "cooldown doubled")
    }

    @Test func throttlingHalvesFromTheObservedRate() {
        var r = AdaptiveRate(configured: 1000, floor: 0.2, now: 0)
        r.throttled(retryAfterSeconds: nil, now: 0, observed: 4)
        #expect(r.rate(now: 1) == 2)
        r.throttled(retryAfterSeconds: nil, now: 1500, observed: 2)
        #expect(r.rate(now: 1501) == 1)
        for i in 0..<20 { r.throttled(retryAfterSeconds: nil, now: 3000 + Int64(i) * 1000) }
        #expect(r.current == 0.2, "the floor")
    }

    /// A limit the provider states is backed off by a tenth per throttling answer (jitter at its edge), not halved;
    /// a wrong statement still comes down, a tenth a second.
    @Test func aStatedRequestLimitBacksOffByATenth() {
        var p = CarrierPacer(rate: 50, requestsPerSecond: 10, maxInFlight: 4, now: 0)
        #expect(p.allowedRequestRate == 10)
        p.throttled(retryAfterSeconds: nil, now: 0)
        #expect(p.allowedRequestRate.map { abs($0 - 9) < 1e-9 } == true, "\(String(describing: p.allowedRequestRate))")
        p.throttled(retryAfterSeconds: nil, now: 500)
        #expect(p.allowedRequestRate.map { abs($0 - 9) < 1e-9 } == true, "once a second")
        p.throttled(retryAfterSeconds: nil, now: 1000)
        #expect(p.allowedRequestRate.map { abs($0 - 8.1) < 1e-9 } == true, "\(String(describing: p.allowedRequestRate))")
        // Unstated: halved.
        var q = CarrierPacer(rate: 50, maxInFlight: 4, now: 0)
        q.throttled(retryAfterSeconds: nil, now: 0)
        #expect(abs(q.allowedRate - 25) < 1e-9)
    }
}
