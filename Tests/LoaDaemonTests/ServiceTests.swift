import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

/// Bytes that count how many of them were read: what a comparison did, without timing it.
struct CountingBytes: RandomAccessCollection {
    final class Reads { var n = 0 }
    let bytes: [UInt8]
    let reads = Reads()
    var startIndex: Int { 0 }
    var endIndex: Int { bytes.count }
    subscript(i: Int) -> UInt8 {
        reads.n += 1
        return bytes[i]
    }
}

@Suite struct ConstantTimeEqualTests {
    @Test func equalOnlyForTheSameBytesAndLength() {
        let secret = Array("it-receipt-0123456789".utf8)
        #expect(DaemonService.constantTimeEqual(secret, secret))
        #expect(!DaemonService.constantTimeEqual(secret, secret.dropLast()))
        #expect(!DaemonService.constantTimeEqual(secret, secret + [0]))  // zeros past the end are not equal
        #expect(!DaemonService.constantTimeEqual([UInt8](), secret))
        #expect(DaemonService.constantTimeEqual([UInt8](), [UInt8]()))
        var flipped = secret
        flipped[flipped.count - 1] ^= 1
        #expect(!DaemonService.constantTimeEqual(flipped, secret))
    }

    /// Issue 16: a length mismatch returned at once, so the time of a wrong guess told its length. Every byte of
    /// the secret is read whatever the guess's length.
    @Test func aWrongLengthStillReadsTheWholeSecret() {
        let secret = CountingBytes(bytes: Array("it-token-0123456789abcdef".utf8))
        for guess in [[UInt8](), Array("x".utf8), Array("it-token-0123456789abcdef-and-more".utf8)] {
            secret.reads.n = 0
            #expect(!DaemonService.constantTimeEqual(guess, secret))
            #expect(secret.reads.n == secret.count, "guess of \(guess.count) bytes read \(secret.reads.n) of \(secret.count)")
        }
    }
}
