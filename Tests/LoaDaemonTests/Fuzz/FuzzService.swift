import Foundation
import LoaCarriers
import LoaCore
@testable import LoaCommandLine
@testable import LoaDaemon
import LoaServer
import LoaStore

/// The daemon's HTTP service as `loa daemon` wires it, on a real SQLite store in a temporary directory,
/// without a listening socket: fuzz targets hand it request heads and bodies directly.
///
/// Carriers: `kannel` (query receipts), `jasmin` (form body), and four generic gateways, one per receipt
/// shape: `gj` (JSON list under `/items`, Loa's id), `gs` (one JSON receipt, gateway id joined with the
/// number), `gf` (form body) and `gq` (query). The dispatcher is built but not started: nothing is sent.
final class FuzzService: @unchecked Sendable {
    static let receiptSecret = "fuzz-receipt-secret-0123456789"
    static let apiToken = "fuzz-api-token-0123456789abcdef"
    /// The read-only scrape token (`metrics_token`).
    static let metricsToken = "fuzz-metrics-token-0123456789"
    static let carriers = ["kannel", "jasmin", "gj", "gs", "gf", "gq"]
    static let shared = FuzzService()

    let service: DaemonService
    let store: Store

    /// A service of its own, on its own store (`shared` serves the fuzz targets; route tests that break their
    /// store make one each). `clock` is the daemon's clock the handlers read.
    init(clock: any TimeSource = SystemTimeSource()) {
        let dir = NSTemporaryDirectory() + "loa-fuzz-\(getpid())-\(UUID().uuidString.prefix(8))"
        removeAtExit(dir)
        try! FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = dir + "/loa.json"
        try! Data(Self.configText(dataDir: dir + "/data").utf8).write(to: URL(fileURLWithPath: path))
        let env = ["TOKEN": Self.apiToken, "MTOKEN": Self.metricsToken, "SECRET": Self.receiptSecret, "PW": "fuzz-password-0123456789"]
        let config: LoaConfig
        switch ConfigLoader.load(path: path, environment: env) {
        case .success(let c): config = c
        case .failure(let p): fatalError("the fuzz config does not load:\n\(p)")
        }
        let logger = Logger(label: "fuzz", level: .error)
        let log = try! DeliveryLogFile(path: config.dataDir + "/delivery.log")
        store = try! Store(directory: config.dataDir, log: log, clock: clock, maskNumbers: true)
        let engine = try! CurlEngine(maxConnectionsPerHost: 8)
        // Wired as `loa daemon` wires them (the gateways are never reached: requests are never sent).
        let (adapters, formats) = Daemon.carriers(config, engine: engine)
        let dispatcher = Dispatcher(store: store, adapters: adapters, config: config, clock: clock, logger: logger)
        service = DaemonService(store: store, config: config, dispatcher: dispatcher, logger: logger, clock: clock, receiptFormats: formats)
    }

    /// What the server would answer: the route's response, the buffered handler's, or the sink's after the body
    /// (given in pieces of `piece` bytes, as libmicrohttpd hands them over).
    func handle(_ head: RequestHead, body: [UInt8], piece: Int = 32 * 1024) -> ServerResponse {
        let response: ServerResponse
        switch service.route(head) {
        case .respond(let r), .refuse(let r): response = r
        case .buffer(let limit, let handler): response = body.count > limit ? ServerResponse(status: 413) : handler(head, body)
        case .stream(let sink):
            var i = 0
            var early: ServerResponse?
            while i < body.count && early == nil {
                let end = min(body.count, i + max(1, piece))
                early = body[i..<end].withUnsafeBytes { sink.consume($0) }
                i = end
            }
            response = early ?? sink.finish()
        }
        precondition((100...599).contains(response.status), "status \(response.status)")
        return response
    }

    /// A request head as the server builds it: the query decoded like a form body (last repeat wins).
    static func head(method: String, path: String, query: [UInt8], headers: [String: String] = [:]) -> RequestHead {
        let pairs = FormURLEncoded.parse(query)
        return RequestHead(method: method, path: path, query: Dictionary(pairs, uniquingKeysWith: { _, last in last }), rawQuery: pairs,
                           headers: headers, remoteAddress: "127.0.0.1")
    }

    private static func configText(dataDir: String) -> String {
        func generic(_ name: String, _ receipts: String) -> String {
            """
            { "name": "\(name)", "kind": "generic", "url": "http://127.0.0.1:9/send?to={{to}}&text={{text}}&id={{id}}", "method": "GET",
              "receipt_secret": { "env": "SECRET" }, "rate": 10,
              "response": { "rules": [ { "status": "200", "class": "accepted" }, { "status": "any", "class": "temporary" } ] },
              "receipts": \(receipts) }
            """
        }
        let statuses = #"{ "DELIVRD": "delivered", "UNDELIV": "undelivered", "ENROUTE": "buffered", "ACCEPTD": "smsc-accepted", "REJECTD": "smsc-rejected" }"#
        let carriers = [
            #"{ "name": "kannel", "kind": "kannel", "url": "http://127.0.0.1:9/cgi-bin/sendsms", "username": "loa", "password": { "env": "PW" }, "receipt_secret": { "env": "SECRET" }, "rate": 10 }"#,
            #"{ "name": "jasmin", "kind": "jasmin", "url": "http://127.0.0.1:9/send", "username": "loa", "password": { "env": "PW" }, "receipt_secret": { "env": "SECRET" }, "rate": 10, "method": "POST" }"#,
            generic("gj", #"{ "format": "json", "items_pointer": "/items", "key": "loa", "id": "/ref", "gateway_id": "/id", "status": "/status", "statuses": { "DELIVRD": "delivered", "*": "undelivered" }, "detail": "/err" }"#),
            generic("gs", #"{ "format": "json", "key": "gateway", "id": ["/sid", "/phone"], "status": "/st", "statuses": \#(statuses), "detail": "/e", "ack": "{\"ok\":true}" }"#),
            generic("gf", #"{ "format": "form", "key": "loa", "id": "id", "gateway_id": "msgid", "status": "status", "statuses": \#(statuses), "detail": "err" }"#),
            generic("gq", #"{ "format": "query", "key": "gateway", "id": ["sid", "phone"], "status": "stat", "statuses": \#(statuses) }"#),
        ]
        return """
            {
              "data_dir": "\(dataDir)",
              "listen": { "address": "127.0.0.1", "port": 0 },
              "api_token": { "env": "TOKEN" },
              "metrics_token": { "env": "MTOKEN" },
              "carriers": [\(carriers.joined(separator: ",\n"))],
              "routing": { "default": "kannel" },
            }
            """
    }
}
