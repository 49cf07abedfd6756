import LoaCore

/// What Kannel's and Jasmin's adapters share: a send URL with a user name and password, GET with a query or POST,
/// a timeout and a proxy, the carrier's secrets masked in every answer, the validity period counted on a clock,
/// and the receipt URL built from the carrier's base. Each adapter adds only its own fields and answers.
public struct GatewayLink: Sendable {
    public let name: String
    /// The gateway's send URL (Kannel's `/cgi-bin/sendsms`, Jasmin's `/send`).
    public let url: String
    public let username: String
    let password: String
    public let timeout: Double
    /// POST instead of GET (each gateway's own POST form).
    public let usePOST: Bool
    public let engine: CurlEngine
    /// The carrier's proxy, or nil for none (``HTTPRequest/proxy``).
    public let proxy: String?
    /// Pass the minutes left until the campaign's deadline as the gateway's validity period.
    public let validity: Bool
    /// The wall clock the validity's minutes are counted from (a manual one in tests).
    let clock: any TimeSource
    /// The carrier's secrets (password, receipt secret, the proxy's credentials), masked in every answer before it
    /// becomes a detail (Kannel echoes the request when it refuses one: `Authorization failed for sendsms` pages
    /// carry the whole query string, password included).
    let mask: SecretMask

    public init(name: String, url: String, username: String, password: String, timeout: Double, engine: CurlEngine, usePOST: Bool,
                proxy: String?, receiptSecret: String?, validity: Bool, clock: any TimeSource) {
        self.name = name
        self.url = url
        self.username = username
        self.password = password
        self.timeout = timeout
        self.engine = engine
        self.usePOST = usePOST
        self.proxy = proxy
        self.validity = validity
        self.clock = clock
        self.mask = SecretMask(secrets: [password] + (receiptSecret.map { [$0] } ?? []), proxy: proxy)
    }

    /// GET the send URL with `query` appended (after `&` when the URL has a query of its own).
    func get(_ query: URLQuery) -> HTTPRequest {
        let sep = url.contains("?") ? "&" : "?"
        return HTTPRequest(method: "GET", url: url + sep + query.encoded, timeout: timeout).atMostOnce().readingHeaders(adapterResponseHeaders).via(proxy)
    }

    /// POST `body` with `headers` to the send URL.
    func post(headers: [HTTPHeader], body: [UInt8]) -> HTTPRequest {
        HTTPRequest(method: "POST", url: url, headers: headers, body: body, timeout: timeout).atMostOnce().readingHeaders(adapterResponseHeaders).via(proxy)
    }

    /// The validity period for `m` in whole minutes (``ValidityPeriod``), or nil when not passed or no deadline applies.
    func validityMinutes(_ m: OutgoingSMS) -> Int? {
        validity ? ValidityPeriod.minutesLeft(until: m.validUntil, now: clock.now()) : nil
    }

    /// The outcome of a request: the answer masked, then classified by `classify(status, body, retry-after)`; a
    /// transport failure as ``GatewayOutcome/transport(_:idempotent:)``, masked too.
    func outcome(of result: Result<HTTPResponse, TransportError>, classify: (Int, String, String?) -> GatewayOutcome) -> GatewayOutcome {
        switch result {
        case .success(let r):
            // Masked before classify cuts the text: a secret cut in two would no longer match.
            mask.apply(classify(r.status, mask.apply(String(r.bodyText.prefix(4096))), r.rateLimitWait))
        case .failure(let error):
            mask.apply(.transport(error))
        }
    }

    /// Why `method` cannot be a Kannel or Jasmin carrier's `method`, or nil (both take GET and POST).
    static func methodProblem(_ method: String?) -> String? {
        guard let m = method, m != "GET" && m != "POST" else { return nil }
        return "must be GET or POST"
    }
}
