import LoaCore
import Testing

/// A reference to a throttle, so `#expect` can call its mutating methods.
final class Box {
    var v: LoginThrottle
    init(_ v: LoginThrottle) { self.v = v }
}

/// The console's login throttle and lockout (``LoginThrottle``), on a manual clock.
struct LoginThrottleTests {
    /// The worked example's lockout: five failures lock the name for the lock period, the right password included;
    /// the lock ends on time and a success clears the name.
    @Test func fiveFailuresLockTheNameEvenForTheRightPassword() {
        let t = Box(LoginThrottle())
        for _ in 0..<4 {
            #expect(t.v.begin(user: "lan", address: "10.0.0.1", now: 0) == .proceed)
            #expect(t.v.failed(user: "lan", address: "10.0.0.1", now: 0) == nil)
        }
        #expect(t.v.begin(user: "lan", address: "10.0.0.1", now: 1_000) == .proceed)
        #expect(t.v.failed(user: "lan", address: "10.0.0.1", now: 1_000) == 901_000)
        // Locked: from this address, another, with any password (the verdict comes before any check).
        #expect(t.v.begin(user: "lan", address: "10.0.0.1", now: 2_000) == .locked(until: 901_000))
        #expect(t.v.begin(user: "lan", address: "10.9.9.9", now: 900_999) == .locked(until: 901_000))
        // Other names are not affected.
        #expect(t.v.begin(user: "minh", address: "10.9.9.9", now: 2_000) == .proceed)
        // The lock ends; a success clears the name's failures.
        #expect(t.v.begin(user: "lan", address: "10.0.0.1", now: 901_000) == .proceed)
        t.v.succeeded(user: "lan", address: "10.0.0.1", now: 901_000)
        #expect(t.v.lockedUntil(user: "lan", now: 901_001) == nil)
        for _ in 0..<4 {
            #expect(t.v.begin(user: "lan", address: "10.0.0.2", now: 902_000) == .proceed)
            #expect(t.v.failed(user: "lan", address: "10.0.0.2", now: 902_000) == nil)
        }
    }

    /// An admin's unlock ends the lock at once.
    @Test func anAdminUnlocks() {
        let t = Box(LoginThrottle())
        for _ in 0..<5 {
            _ = t.v.begin(user: "lan", address: "a", now: 0)
            _ = t.v.failed(user: "lan", address: "a", now: 0)
        }
        #expect(t.v.begin(user: "lan", address: "a", now: 10) == .locked(until: 900_000))
        let wasLocked = t.v.unlock(user: "lan")
        #expect(wasLocked)
        #expect(t.v.begin(user: "lan", address: "a", now: 20) == .proceed)
        let nobodyLocked = t.v.unlock(user: "nobody")
        #expect(!nobodyLocked)
    }

    /// One address trying many names: after 20 failures its next attempt is refused, whatever the name, until a
    /// token refills (one per 45 s); another address is not affected. A refused attempt takes no token.
    @Test func oneAddressTryingManyNamesIsThrottled() {
        let t = Box(LoginThrottle())
        for i in 0..<20 {
            #expect(t.v.begin(user: "user\(i)", address: "203.0.113.7", now: 0) == .proceed)
            #expect(t.v.failed(user: "user\(i)", address: "203.0.113.7", now: 0) == nil)
        }
        #expect(t.v.begin(user: "user20", address: "203.0.113.7", now: 6_000) == .throttled(until: 45_000))
        #expect(t.v.begin(user: "user21", address: "203.0.113.7", now: 44_999) == .throttled(until: 45_000))
        #expect(t.v.begin(user: "user20", address: "198.51.100.1", now: 6_000) == .proceed)
        #expect(t.v.begin(user: "user22", address: "203.0.113.7", now: 45_000) == .proceed)
    }

    /// Attempts on one name at the same moment each take a token before any password is checked: a sixth concurrent
    /// attempt is refused, and a success gives its tokens back.
    @Test func concurrentAttemptsCountBeforeTheirChecks() {
        let t = Box(LoginThrottle())
        for i in 0..<5 { #expect(t.v.begin(user: "lan", address: "a\(i)", now: 0) == .proceed) }
        if case .throttled = t.v.begin(user: "lan", address: "a9", now: 0) {} else { Issue.record("a sixth attempt at once was let through") }
        t.v.abandoned(user: "lan", address: "a0")
        #expect(t.v.begin(user: "lan", address: "a0", now: 0) == .proceed)
        t.v.succeeded(user: "lan", address: "a0", now: 0)
        #expect(t.v.begin(user: "lan", address: "a8", now: 0) == .proceed)
    }

    /// Memory is bounded: 5,000 names tried from as many addresses leave at most `maxTracked` of each.
    @Test func trackedNamesAndAddressesAreBounded() {
        var limits = LoginThrottle.Limits()
        limits.maxTracked = 1_000
        let t = Box(LoginThrottle(limits: limits))
        for i in 0..<5_000 {
            _ = t.v.begin(user: "u\(i)", address: "a\(i)", now: UnixMillis(i))
            _ = t.v.failed(user: "u\(i)", address: "a\(i)", now: UnixMillis(i))
        }
        #expect(t.v.tracked.users <= 1_000 && t.v.tracked.addresses <= 1_000, "\(t.v.tracked)")
    }
}
