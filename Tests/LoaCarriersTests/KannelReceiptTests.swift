import LoaCarriers
import LoaCore
import Testing

/// Kannel's delivery reports as Kannel 1.4.5 really sends them (`gw/dlr.h`, `gw/smsc/smsc_smpp.c`,
/// `gw/urltrans.c`): `%d` a bit set, `%F` the SMSC's message id, `%A` the SMPP receipt text.
@Suite struct KannelReceiptTests {
    /// An SMPP receipt text as an SMSC writes it (and Kannel passes it on in `%A`).
    static func smpp(_ stat: String, err: String = "000", id: String = "1a2b3c4d", separator: String = " ") -> String {
        ["id:\(id)", "sub:001", "dlvrd:\(stat == "DELIVRD" ? "001" : "000")", "submit date:2612020101", "done date:2612020102",
         "stat:\(stat)", "err:\(err)", "text:Xin chao stat:DELIVRD"].joined(separator: separator)
    }

    func parse(st: String, fc: String? = "1a2b3c4d", ans: String? = nil, id: String = "42") -> Result<InboundReceipt, ReceiptParseError> {
        var q = ["k": "secret", "id": id, "st": st, "ts": "1764637200"]
        if let fc { q["fc"] = fc }
        if let ans { q["ans"] = ans }
        return KannelAdapter.parseReceipt(q)
    }

    @Test func everyFlagValue() {
        let cases: [(String, String?, ReceiptStatus, String?)] = [
            ("1", KannelReceiptTests.smpp("DELIVRD"), .delivered, "DELIVRD err 000"),
            ("2", KannelReceiptTests.smpp("UNDELIV", err: "001"), .undelivered, "UNDELIV err 001"),
            ("4", KannelReceiptTests.smpp("ENROUTE"), .buffered, "ENROUTE err 000"),
            ("8", "ACK/", .smscAccepted, nil),
            ("16", "NACK/0x0000000b/Invalid Destination Address", .smscRejected, "NACK/0x0000000b/Invalid Destination Address"),
            // DLR_EXPIRED = 0x20 | DLR_FAIL
            ("34", KannelReceiptTests.smpp("EXPIRED"), .expired, "EXPIRED err 000"),
            // DLR_UNKNOWN = 0x40 | DLR_FAIL
            ("66", nil, .undelivered, "UNKNOWN"),
            // Combined with the SMSC bits, the device bits decide.
            ("9", nil, .delivered, nil), ("18", nil, .undelivered, nil), ("12", nil, .smscAccepted, nil), ("20", nil, .smscRejected, nil),
            ("50", nil, .expired, nil),
        ]
        for (st, ans, status, detail) in cases {
            #expect(parse(st: st, ans: ans) == .success(InboundReceipt(key: .loa(42), status: status, gatewayID: "1a2b3c4d", detail: detail)), "st=\(st)")
        }
    }

    /// The issue's report: EXPIRED reached the dlr-url as st=34 and was refused with 400.
    @Test func expiredAsThirtyFourAndAsTwoWithTheStatWord() {
        let r34 = parse(st: "34", fc: "0a1b2c3d", ans: KannelReceiptTests.smpp("EXPIRED", id: "0a1b2c3d"))
        #expect(r34 == .success(InboundReceipt(key: .loa(42), status: .expired, gatewayID: "0a1b2c3d", detail: "EXPIRED err 000")))
        // A Kannel older than 1.4.5, or a receipt without the message_state TLV: 2 with stat:EXPIRED.
        #expect((try? parse(st: "2", ans: KannelReceiptTests.smpp("EXPIRED")).get().status) == .expired)
    }

    @Test func everyStatWord() {
        let finals: [(String, String, ReceiptStatus)] = [
            ("DELIVRD", "1", .delivered), ("EXPIRED", "34", .expired), ("UNDELIV", "2", .undelivered), ("REJECTD", "2", .undelivered),
            ("DELETED", "2", .undelivered), ("UNKNOWN", "2", .undelivered), ("ACCEPTD", "4", .buffered), ("ENROUTE", "4", .buffered),
            // Kannel maps words it does not know to 2; Loa keeps the word as the reason.
            ("SKIPPED", "2", .undelivered),
        ]
        for (word, st, status) in finals {
            let r = try? parse(st: st, ans: KannelReceiptTests.smpp(word, err: "012")).get()
            #expect(r?.status == status, "\(word)")
            // The reason is the word and the code only: never the receipt's ids, dates or text.
            #expect(r?.detail == "\(word) err 012", "\(word)")
        }
    }

    @Test func receiptTextWithAndWithoutSpaces() {
        #expect(SMPPReceiptText.parse(KannelReceiptTests.smpp("EXPIRED")) == .success(SMPPReceiptText(word: "EXPIRED", err: "000")))
        // `+` where a form encoder put it for spaces.
        #expect(SMPPReceiptText.parse(KannelReceiptTests.smpp("UNDELIV", err: "011", separator: "+")) == .success(SMPPReceiptText(word: "UNDELIV", err: "011")))
        // No separators the SMSC would not write, a space after the colon, lower case.
        #expect(SMPPReceiptText.parse("id:7 sub:001 dlvrd:000 submit date:2612020101 done date:2612020102 stat: rejectd err: 00b")
            == .success(SMPPReceiptText(word: "REJECTD", err: "00b")))
        #expect(SMPPReceiptText.parse("stat:DELIVRD") == .success(SMPPReceiptText(word: "DELIVRD", err: nil)))
        // `stat:` only in the message text is not the receipt's.
        #expect(SMPPReceiptText.parse("ACK/") == .success(nil))
        #expect(SMPPReceiptText.parse("id:7 text:stat:DELIVRD err:000") == .success(nil))
        #expect(SMPPReceiptText.parse("") == .success(nil))
    }

    /// %F is the SMSC's message id (8 hex digits from an SMPP SMSC): the gateway id, never a reason.
    @Test func foreignIDIsTheGatewayID() {
        let r = try? parse(st: "8", fc: "5f3a9c01", ans: "ACK/").get()
        #expect(r?.gatewayID == "5f3a9c01")
        #expect(r?.detail == nil)
        #expect((try? parse(st: "1", fc: "").get())?.gatewayID == nil)
        #expect((try? parse(st: "1", fc: nil).get())?.gatewayID == nil)
        // Not substituted (an SMSC module that does not set it).
        #expect((try? parse(st: "1", fc: "%F").get())?.gatewayID == nil)
        let long = String(repeating: "a", count: 64)
        #expect((try? parse(st: "1", fc: long).get())?.gatewayID == long)
    }

    @Test func missingOrGarbledFieldsNameTheField() {
        func field(_ r: Result<InboundReceipt, ReceiptParseError>) -> String? {
            if case .failure(let e) = r { return e.field }
            return nil
        }
        #expect(field(KannelAdapter.parseReceipt(["st": "1"])) == "id")
        #expect(field(parse(st: "1", id: "abc")) == "id")
        #expect(field(parse(st: "1", id: "-3")) == "id")
        #expect(field(KannelAdapter.parseReceipt(["id": "42"])) == "st")
        #expect(field(parse(st: "")) == "st")
        #expect(field(parse(st: "x")) == "st")
        #expect(field(parse(st: "0")) == "st")
        #expect(field(parse(st: "128")) == "st")
        #expect(field(parse(st: "3")) == "st")
        #expect(field(parse(st: "32")) == "st")
        #expect(field(parse(st: "1", fc: "a b")) == "fc")
        #expect(field(parse(st: "1", fc: String(repeating: "a", count: 65))) == "fc")
        #expect(field(parse(st: "2", ans: "id:1 stat:UN\u{1}DELIV err:000")) == "ans")
        #expect(field(parse(st: "2", ans: "id:1 stat: err:000")) == "ans")
        #expect(field(parse(st: "2", ans: "id:1 stat:UNDELIV err:#!")) == "ans")
        #expect(parse(st: "200") == .failure(ReceiptParseError(field: "st", reason:
            "not a Kannel DLR type (bits 1, 2, 4, 8, 16, 32, 64, e.g. 34 for expired): '200'")))
    }
}
