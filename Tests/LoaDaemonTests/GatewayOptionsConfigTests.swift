import Foundation
import LoaCarriers
import LoaCore
import Testing
@testable import LoaCommandLine
@testable import LoaDaemon
@testable import LoaSim

/// The Kannel and Jasmin options in the config file: the shipped examples load, values reach the adapters'
/// options, and bad ones name file, line and field.
@Suite struct GatewayOptionsConfigTests {
    let env = ["T": "0123456789abcdef-token", "LOA_RECEIPT_SECRET": "receipt-secret-0123456789", "LOA_KANNEL_PASSWORD": "kannel-pw",
               "LOA_JASMIN_PASSWORD": "jasmin-pw"]

    func config(_ carriers: [String], default name: String) -> String {
        """
        {
          "data_dir": "data", "api_token": { "env": "T" },
          "carriers": [
        \(carriers.joined(separator: ",\n"))
          ],
          "routing": { "default": "\(name)" },
        }
        """
    }

    func sample(_ file: String) throws -> String {
        try String(contentsOfFile: CarrierConfigTests.root + "/Config/carriers/" + file, encoding: .utf8)
    }

    @Test func theShippedKannelSMPPAndJasminExamplesLoadWithTheirOptions() throws {
        let s = Scratch()
        let path = s.write("loa.json", config([try sample("kannel-smpp.json5"), try sample("jasmin.json5")], default: "kannel-smpp"))
        let c = try ConfigLoader.load(path: path, environment: env).get()
        #expect(c.carriers.map(\.kind) == ["kannel", "jasmin"])
        #expect(c.carriers[0].kannel == KannelOptions(smsc: "smpp", priority: 0, deferredMinutes: nil, validity: true))
        #expect(c.carriers[0].method == "POST" && c.carriers[1].method == "POST")
        #expect(c.carriers[1].jasmin == JasminOptions(validity: true, maxParts: 5))
    }

    @Test func defaultsPassTheValidityAndAllowFiveJasminParts() throws {
        let s = Scratch()
        let path = s.write("loa.json", config([
            #"{ "name": "k", "kind": "kannel", "url": "http://127.0.0.1:13013/cgi-bin/sendsms", "username": "loa", "password": { "env": "LOA_KANNEL_PASSWORD" }, "receipt_secret": { "env": "LOA_RECEIPT_SECRET" }, "rate": 10 }"#,
            #"{ "name": "j", "kind": "jasmin", "url": "http://127.0.0.1:1401/send", "username": "loa", "password": { "env": "LOA_JASMIN_PASSWORD" }, "receipt_secret": { "env": "LOA_RECEIPT_SECRET" }, "rate": 10, "validity": false, "max_parts": 8 }"#,
        ], default: "k"))
        let c = try ConfigLoader.load(path: path, environment: env).get()
        #expect(c.carriers[0].kannel == KannelOptions())
        #expect(c.carriers[0].kannel.validity)
        #expect(c.carriers[1].jasmin == JasminOptions(validity: false, maxParts: 8))
    }

    @Test func badOptionsNameFileLineAndField() throws {
        let s = Scratch()
        let kannel = """
            {
              "name": "k", "kind": "kannel", "url": "http://127.0.0.1:13013/cgi-bin/sendsms", "username": "loa",
              "password": { "env": "LOA_KANNEL_PASSWORD" }, "receipt_secret": { "env": "LOA_RECEIPT_SECRET" }, "rate": 10,
              "smsc": "two words",
              "priority": 4,
              "deferred_minutes": 0,
              "max_parts": 3,
            }
            """
        let jasmin = """
            {
              "name": "j", "kind": "jasmin", "url": "http://127.0.0.1:1401/send", "username": "loa",
              "password": { "env": "LOA_JASMIN_PASSWORD" }, "receipt_secret": { "env": "LOA_RECEIPT_SECRET" }, "rate": 10,
              "smsc": "smpp",
              "max_parts": 0,
            }
            """
        let path = s.write("loa.json", config([kannel, jasmin], default: "k"))
        guard case .failure(let problems) = ConfigLoader.load(path: path, environment: env) else {
            Issue.record("bad options must not load")
            return
        }
        let text = problems.description
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        func line(_ needle: String, after: Int = 0) -> Int { (lines.indices.first { $0 >= after && lines[$0].contains(needle) } ?? -1) + 1 }
        let second = line(#""name": "j""#)
        #expect(text.contains("\(path):\(line(#""smsc": "two words""#)): carriers.0.smsc: must be a Kannel smsc-id"), "\(text)")
        #expect(text.contains("\(path):\(line(#""priority": 4"#)): carriers.0.priority: must be 0-3"), "\(text)")
        #expect(text.contains("\(path):\(line(#""deferred_minutes": 0"#)): carriers.0.deferred_minutes: must be 1-10080"), "\(text)")
        #expect(text.contains("\(path):\(line(#""max_parts": 3"#)): carriers.0.max_parts: only for kind jasmin (this carrier is kannel)"), "\(text)")
        #expect(text.contains("\(path):\(line(#""smsc": "smpp""#, after: second)): carriers.1.smsc: only for kind kannel"), "\(text)")
        #expect(text.contains("\(path):\(line(#""max_parts": 0"#, after: second)): carriers.1.max_parts: must be 1-255"), "\(text)")
    }
}
