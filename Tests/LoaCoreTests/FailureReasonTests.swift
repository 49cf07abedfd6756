import LoaCore
import Testing

/// ``FailureReason``: codes without ids or long numbers; short codes kept.
@Suite struct FailureReasonTests {
    @Test func codesDropIdsAndNumbers() {
        #expect(FailureReason.code("UNDELIV err 001") == "UNDELIV err 001")
        #expect(FailureReason.code("HTTP 400: msg 1764000123456 to +84901234567 refused") == "HTTP 400: msg # to +# refused")
        #expect(FailureReason.code("id 7f3a9c21-0b4e-4c8e-9d2a-11aa22bb33cc rejected") == "id # rejected")
        #expect(FailureReason.code("NACK/0x0000000b/Invalid Destination Address") == "NACK/0x0000000b/Invalid Destination Address")
        #expect(FailureReason.code("undeliverable: subscriber 84901234567 absent (message sim-000123)")
                == FailureReason.code("undeliverable: subscriber 84907654321 absent (message sim-000999)"))
    }

    @Test func classesFollowWhereItFailed() {
        #expect(FailureReason.classify(state: "failed", accepted: true) == .undelivered)
        #expect(FailureReason.classify(state: "failed", accepted: false) == .refused)
        #expect(FailureReason.classify(state: "expired", accepted: true) == .expired)
    }
}
