import Foundation
import LoaCore
@testable import LoaStore

/// The implementations of ``MessageStore`` the behavioural tests run against. A second implementation adds a case
/// here and a line to ``makeStore(_:log:clock:maskNumbers:logger:kind:)``; the suites that take a `StoreKind` argument
/// run once per case, the rest against ``StoreKind/default``.
enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite

    /// The implementation of tests that do not run over every kind.
    static let `default` = StoreKind.sqlite

    var description: String { rawValue }
}

/// Opens (creating if needed) a store of `kind` in the data directory `dir`: the only place the behavioural tests
/// name an implementation. Tests of one implementation's own machinery (SQLite's checkpoints, WAL, writer, schema)
/// open that implementation directly and say so.
func makeStore(_ dir: String, log: DeliveryLogFile?, clock: any TimeSource, maskNumbers: Bool = false,
               logger: Logger = Logger(label: "loa"), kind: StoreKind = .default) throws -> any MessageStore {
    switch kind {
    case .sqlite: try Store(directory: dir, log: log, clock: clock, maskNumbers: maskNumbers, logger: logger)
    }
}

/// A message's stored state, reason, send time and gateway id, read from the implementation behind `store`: the
/// fields the interface does not return one message at a time.
func messageRow(_ store: any MessageStore, _ id: Int64) throws -> (state: MessageState, detail: String?, sentAt: Int64?, gatewayID: String?) {
    switch store {
    case let sqlite as Store:
        return try sqlite.write { ctx in
            var out: (MessageState, String?, Int64?, String?) = (.unknown, nil, nil, nil)
            try ctx.statement("SELECT state, detail, sent_at, gateway_id FROM messages WHERE id = ?").query([.int(id)]) {
                out = (MessageState(rawValue: Int($0.int("state")))!, $0.text("detail"), $0.isNull("sent_at") ? nil : $0.int("sent_at"), $0.text("gateway_id"))
            }
            return out
        }
    default:
        throw StoreError.invalid("no message reader for \(type(of: store))")
    }
}
