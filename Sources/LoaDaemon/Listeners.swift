import LoaServer

/// Which endpoints one listener serves.
///
/// With `receipts_listen` set, the daemon runs two libmicrohttpd daemons: `listen` serves the operator API and
/// `/metrics`, `receipts_listen` the gateways' `/dlr` and `/mo`; both answer `/healthz` and `/readyz`. Each has
/// its own connection limit, per-client limit and deadlines, so a flood on the address gateways can reach
/// never takes the operator's connections (and the API can listen on an address gateways cannot reach), and
/// an operator's uploads never take the gateways'. Without it one listener serves everything, as before.
struct ListenerService: HTTPService {
    enum Role: String, Sendable {
        /// Everything (one listener).
        case all
        /// The operator API and metrics.
        case api
        /// Receipts and replies.
        case receipts
    }

    let role: Role
    let inner: DaemonService

    func route(_ head: RequestHead) -> Route {
        if role == .all { return inner.route(head) }
        let first = head.path.split(separator: "/", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        let receiptsOnly = first == "dlr" || first == "mo"
        let both = first == "healthz" || first == "readyz"
        if both || receiptsOnly == (role == .receipts) { return inner.route(head) }
        let other = role == .api ? "receipts_listen" : "listen"
        return .refuse(inner.error(404, "not-found", "no such endpoint on this listener: \(head.path) is served on \(other)"))
    }
}

extension HTTPServer {
    /// A listener with a config's limits (idle timeout 30 s, as before).
    convenience init(address: String, port: Int, limits: LoaConfig.ListenLimits, service: any HTTPService) throws(HTTPServerError) {
        try self.init(address: address, port: port, service: service, connectionLimit: limits.connectionLimit, connectionTimeout: 30,
                      perClientLimit: limits.perClientLimit, headTimeout: limits.headTimeoutSeconds, bodyTimeout: limits.bodyTimeoutSeconds)
    }
}
