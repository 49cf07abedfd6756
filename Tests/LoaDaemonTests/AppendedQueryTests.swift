import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

/// A provider that appends `?name=value…` to a receipt URL that already has a query (issue 17).
@Suite struct AppendedQueryTests {
    let secret = Array("it-receipt-0123456789".utf8)

    @Test func theAppendedFieldIsReadAndTheSecretCutBack() {
        // `/dlr/x?k=SECRET?status=DELIVRD&id=g-1`: the server's parser leaves the first appended field in `k`.
        let q = DaemonService.readingAppendedQuery(["k": "it-receipt-0123456789?status=DELIVRD", "id": "g-1"], secret: secret)
        #expect(q == ["k": "it-receipt-0123456789", "status": "DELIVRD", "id": "g-1"])
        // Appended after another of Loa's own fields (`…&m=42?status=…`).
        #expect(DaemonService.readingAppendedQuery(["k": "s", "m": "42?status=1"], secret: secret) == ["k": "s", "m": "42", "status": "1"])
        // A field the query already has is not overwritten by the appended one.
        #expect(DaemonService.readingAppendedQuery(["m": "42?k=forged", "k": "it-receipt-0123456789"], secret: secret)
            == ["m": "42", "k": "it-receipt-0123456789"])
    }

    @Test func theSecretIsNotWeakened() {
        // A secret that holds `?` itself (sent as %3F, decoded by the server) is matched whole, not cut.
        let odd = Array("it-receipt?x=0123456789".utf8)
        #expect(DaemonService.readingAppendedQuery(["k": "it-receipt?x=0123456789"], secret: odd) == ["k": "it-receipt?x=0123456789"])
        // Cutting only removes the appended part: what remains must still be the whole secret.
        let cut = DaemonService.readingAppendedQuery(["k": "it-receipt-01234?status=DELIVRD"], secret: secret)
        #expect(cut["k"] == "it-receipt-01234" && !DaemonService.constantTimeEqual(Array(cut["k"]!.utf8), secret))
        // Text with a `?` that is not followed by `name=` is left alone (an error text from the gateway).
        #expect(DaemonService.readingAppendedQuery(["err": "why? no route"], secret: secret) == ["err": "why? no route"])
    }
}
