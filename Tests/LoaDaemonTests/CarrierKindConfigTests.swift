import Foundation
import LoaCarriers
import LoaCore
import Testing
@testable import LoaCommandLine
@testable import LoaDaemon

/// The config asks the carrier kinds' registry: which kinds exist, which keys an entry of each may have and what
/// its options mean, and the daemon builds each carrier's adapter and receipt format through its kind.
@Suite struct CarrierKindConfigTests {
    let env = ["T": "0123456789abcdef-token", "S": "receipt-secret-0123456789", "P": "gateway-pw"]

    func config(_ carriers: [String]) -> String {
        """
        {
          "data_dir": "data", "api_token": { "env": "T" },
          "carriers": [
        \(carriers.joined(separator: ",\n"))
          ],
          "routing": { "default": "k" },
        }
        """
    }

    let kannel = #"{ "name": "k", "kind": "kannel", "url": "http://127.0.0.1:13013/cgi-bin/sendsms", "username": "loa", "password": { "env": "P" }, "receipt_secret": { "env": "S" }, "rate": 10 }"#
    let jasmin = #"{ "name": "j", "kind": "jasmin", "url": "http://127.0.0.1:1401/send", "username": "loa", "password": { "env": "P" }, "receipt_secret": { "env": "S" }, "rate": 10, "max_parts": 3 }"#
    let generic = """
        { "name": "g", "kind": "generic", "url": "http://127.0.0.1:9/send?to={{to}}&id={{id}}", "receipt_secret": { "env": "S" }, "rate": 10,
          "response": { "rules": [ { "status": "200", "class": "accepted" } ] },
          "receipts": { "format": "form", "key": "loa", "id": "m", "status": "st", "statuses": { "D": "delivered" }, "ack": "got it" } }
        """

    func problems(_ text: String) -> String? {
        let s = Scratch()
        guard case .failure(let p) = ConfigLoader.load(path: s.write("loa.json", text), environment: env) else { return nil }
        return p.description
    }

    @Test func anUnknownKindsMessageListsTheRegistrysNames() throws {
        let text = try #require(problems(config([kannel.replacingOccurrences(of: #""kannel""#, with: #""smpp""#)])))
        #expect(text.contains("carriers.0.kind: unknown adapter kind 'smpp' (known: \(CarrierKinds.names.joined(separator: ", ")))"), "\(text)")
    }

    @Test func eachCarrierIsBuiltByItsKind() throws {
        let s = Scratch()
        let c = try ConfigLoader.load(path: s.write("loa.json", config([kannel, jasmin, generic])), environment: env).get()
        #expect(c.carriers.map(\.carrierKind.name) == ["kannel", "jasmin", "generic"])
        #expect(c.carriers.map(\.paceFromReceipts) == [true, true, false], "each kind's default")
        let engine = try CurlEngine()
        defer { engine.shutdown() }
        let (adapters, formats) = Daemon.carriers(c, engine: engine)
        #expect(adapters["k"] is KannelAdapter && adapters["j"] is JasminAdapter && adapters["g"] is GenericHTTPAdapter)
        #expect(formats["k"]?.reading == .query)
        #expect(formats["j"]?.reading == .body(ack: "ACK/Jasmin"))
        #expect(formats["g"]?.reading == .body(ack: "got it"))
        #expect((adapters["j"] as? JasminAdapter)?.options.maxParts == 3)
        #expect(CampaignScan.partLimits(c).mapValues(\.maxParts) == ["j": 3], "only Jasmin cuts long messages")
    }

    @Test func anotherKindsOptionIsRefusedByNameAndAGenericKeyIsUnknownElsewhere() throws {
        let genericWithValidity = generic.replacingOccurrences(of: #""rate": 10,"#, with: #""rate": 10, "validity": true, "smsc": "x","#)
        let kannelWithHeaders = kannel.replacingOccurrences(of: #""rate": 10"#, with: #""rate": 10, "headers": { "X": "y" }, "max_parts": 2"#)
        let text = try #require(problems(config([kannelWithHeaders, genericWithValidity])))
        #expect(text.contains("carriers.0.headers: unknown field"), "\(text)")
        #expect(text.contains("carriers.0.max_parts: only for kind jasmin (this carrier is kannel)"), "\(text)")
        #expect(text.contains("carriers.1.smsc: only for kind kannel (this carrier is generic)"), "\(text)")
        #expect(text.contains("carriers.1.validity: only for kinds kannel and jasmin (a generic gateway uses {{validity.minutes}} in its template)"),
                "\(text)")
        #expect(!text.contains("carriers.1.headers"), "\(text)")
    }
}

