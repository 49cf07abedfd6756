import Foundation

/// An HTTP gateway described entirely in the config file (carrier `"kind": "generic"`): how to build the send
/// request, how to read the answer, and how to read the gateway's delivery receipts.
///
/// Decoded from the carrier's config entry itself (so `url` and `method` sit beside `name`, `rate` and the
/// other carrier keys). Every field keeps its raw text; ``validate(secretNames:)`` reports every problem with its
/// path in the entry, and ``GenericHTTPAdapter`` compiles the valid parts once at start-up.
///
/// **Placeholders** may appear in `url`, header values, `basic_auth`, body templates and batch items:
///
/// | placeholder | value |
/// |---|---|
/// | `{{to}}` | E.164 with `+`: `+84912345678` |
/// | `{{to.digits}}` | E.164 digits: `84912345678` |
/// | `{{to.national}}` | national form for `+84` numbers: `0912345678` (other countries: the digits) |
/// | `{{from}}` | the brandname |
/// | `{{text}}` | the message text |
/// | `{{id}}` | Loa's message id (`123`) |
/// | `{{receipt_url}}` | the message's receipt URL (for a batch: the first message's; carries Loa's receipt secret) |
/// | `{{unicode}}` | `1` for UCS-2, `0` for GSM-7 |
/// | `{{coding}}` | `8` for UCS-2, `0` for GSM-7 (SMPP data_coding) |
/// | `{{segments}}` | the number of SMS parts |
/// | `{{encoding}}` | `gsm7` or `ucs2` |
/// | `{{validity.seconds}}` | whole seconds left until the campaign's deadline when the request is built, rounded down, at least `1` |
/// | `{{validity.millis}}` | the same in milliseconds (Vonage `ttl`) |
/// | `{{validity.minutes}}` | whole minutes left until the deadline, rounded down, at least `1` |
/// | `{{deadline.iso}}` | the deadline in ISO 8601 UTC, whole seconds: `2026-12-02T01:55:00Z` |
/// | `{{deadline.unix}}` | the deadline in seconds since the epoch: `1796176500` |
/// | `{{secret.NAME}}` | the carrier's secret `NAME` (from its `secrets` entry) |
///
/// The validity and deadline placeholders come from ``OutgoingSMS/validUntil``. Every campaign has a deadline, so
/// they always have a value when Loa sends; a message without one (an adapter used directly: tests, previews)
/// renders them empty, and `null` with `|number`. Rounding down keeps the validity a gateway gets inside the
/// deadline: the network drops what it could not deliver in time (Loa's receipt then reads `expired`). A provider
/// that bounds its validity period gets the time left clamped into `validity_range: {"min_seconds", "max_seconds"}`.
///
/// **Conditionals** choose a text by a field's value, with no code per provider:
/// `{{FIELD|VALUE=OUT|VALUE=OUT|*=DEFAULT}}`, e.g. Vonage's `type`: `{{encoding|gsm7=text|ucs2=unicode}}`,
/// or `{{segments|1=single|*=multi}}`. FIELD is any placeholder name above except `secret.…`; VALUE is compared
/// with the field's text as rendered (before escaping); OUT is written like a value (escaped for where it
/// stands; it may be empty: `{{unicode|1=8|0=}}`); `*` takes every other value. OUT and VALUE cannot hold `|`,
/// `=` (in VALUE) or `}}`. At load, a conditional over a field with few values (`encoding`: gsm7, ucs2;
/// `unicode`: 0, 1; `coding`: 0, 8) must name only those values and cover them all or give `*`; over any other
/// field it must give `*`. Otherwise the config is refused naming the path (`carriers.N.body.fields.type`).
///
/// **Numbers in JSON**: `{{FIELD|number}}` as the whole of a JSON template string (`"ttl": "{{validity.seconds|number}}"`)
/// writes the value as a bare JSON number (`"ttl":3600`; `null` when empty). It takes the numeric fields `id`,
/// `segments`, `unicode`, `coding`, `validity.minutes`, `validity.seconds`, `validity.millis`, `deadline.unix`; anywhere else it is
/// refused at load. Without `|number` a whole-string placeholder is a JSON string (`"3600"`).
///
/// In a JSON template a string that is exactly one placeholder becomes that value as a JSON string; other strings
/// are interpolated; both are JSON-escaped. In `url` and form fields every value is percent-encoded (RFC 3986
/// unreserved characters kept). Header and `basic_auth` values are used as they are (CR and LF removed).
/// Outside a batch item, message placeholders take the first message of the request.
///
/// **Keys** (each documented on its property below): `method`, `url`, `headers`, `basic_auth`, `body`
/// (``Body``), `batch` (``Batch``), `response` (``Response``: `rules`, `default_class`, `message_id`, `detail`,
/// `results` (``Results``: `match` `ref`, `to` or `index`; one item per SMS part gives the message's
/// `partIDs`), `rejected`), `receipts` (``Receipts``, with `aggregate`: ``Aggregate``) and `poll` (``Poll``,
/// with `answer`: ``PollAnswer``; its own placeholders `{{gateway_id}}`, `{{gateway_ids}}`,
/// `"{{gateway_ids|list}}"`, `{{request_id}}`, `{{secret.NAME}}`), `validity_range` (``ValidityRange``: the
/// provider's bounds on a validity period). Unknown keys in the entry, in `poll`,
/// `poll.answer` and `receipts.aggregate` are refused by the config loader.
///
/// **Receipt URLs** (`{{receipt_url}}`) carry Loa's secret as `?k=…`; a provider that appends its own
/// `?name=value` to it is read by the receipt endpoint (the secret must still match whole).
public struct GenericGatewaySpec: Sendable, Decodable {
    /// `GET`, `POST` or `PUT`. Default `POST` when there is a `body`, else `GET`.
    public var method: String?
    /// The request URL; may hold placeholders (query-string APIs), each value percent-encoded.
    public var url: String
    /// Extra request headers; values may hold placeholders. A `Content-Type` here replaces the body format's.
    public var headers: [String: String]?
    /// HTTP Basic authentication, sent as `Authorization: Basic base64(username:password)`.
    public var basicAuth: BasicAuth?
    /// The request body; absent for GET.
    public var body: Body?
    /// Several recipients in one request; absent means one message per request.
    public var batch: Batch?
    /// How the answer is classified.
    public var response: Response?
    /// How the gateway's delivery receipts (posted to `/dlr/<carrier>`) are read.
    public var receipts: Receipts?
    /// A status API Loa asks for the receipts of messages still `sent` (gateways that call back only in
    /// aggregate, or not at all).
    public var poll: Poll?
    /// The validity period the provider takes, when it bounds it (Twilio `ValidityPeriod` 1–36,000 s, Vonage `ttl`
    /// 20 s–7 days): the `{{validity.*}}` placeholders give the time left clamped into it (`{{deadline.*}}` stay the deadline).
    public var validity: ValidityRange?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case method, url, headers, body, batch, response, receipts, poll
        case validity = "validity_range"
        case basicAuth = "basic_auth"
    }

    /// `{"min_seconds": 20, "max_seconds": 604800}`. Less time left than the minimum gives the minimum (the provider
    /// refuses less, and Loa's hand-off window already stops sending seconds before the deadline); more than the
    /// maximum gives the maximum (the message may then outlive the deadline at the provider: say so in the profile).
    public struct ValidityRange: Sendable, Decodable, Equatable {
        public var minSeconds: Double?
        public var maxSeconds: Double?
        enum CodingKeys: String, CodingKey { case minSeconds = "min_seconds", maxSeconds = "max_seconds" }
        public init(minSeconds: Double? = nil, maxSeconds: Double? = nil) {
            self.minSeconds = minSeconds
            self.maxSeconds = maxSeconds
        }

        /// The time left from `now` until `validUntil` (milliseconds), moved into the range.
        public func clamp(_ validUntil: Int64, now: Int64) -> Int64 {
            var left = Double(Swift.max(0, validUntil - now))
            if let lo = minSeconds { left = Swift.max(left, lo * 1000) }
            if let hi = maxSeconds { left = Swift.min(left, hi * 1000) }
            return Int64(left.rounded(.down))
        }
    }

    /// The keys a carrier entry of kind `generic` may have besides the common ones (the config refuses others).
    public static var keyNames: [String] { CodingKeys.allCases.map(\.stringValue) }

    public init(method: String? = nil, url: String, headers: [String: String]? = nil, basicAuth: BasicAuth? = nil, body: Body? = nil,
                batch: Batch? = nil, response: Response? = nil, receipts: Receipts? = nil, poll: Poll? = nil) {
        self.poll = poll
        self.method = method
        self.url = url
        self.headers = headers
        self.basicAuth = basicAuth
        self.body = body
        self.batch = batch
        self.response = response
        self.receipts = receipts
    }

    /// `{"username": "{{secret.token}}", "password": "x"}`.
    public struct BasicAuth: Sendable, Decodable {
        public var username: String
        public var password: String
    }

    /// `{"format": "json", "template": <any JSON value>}` or `{"format": "form", "fields": {"name": "template"}}`.
    ///
    /// JSON objects are written with their keys in lexicographic order (the config decoder does not keep the
    /// file's order); form fields likewise, sorted by name.
    public struct Body: Sendable, Decodable {
        /// `json` (`Content-Type: application/json`) or `form` (`application/x-www-form-urlencoded`).
        public var format: String
        /// For `json`: the body, with placeholders in its strings.
        public var template: JSONValue?
        /// For `form`: field name to template string.
        public var fields: [String: String]?
    }

    /// `{"max": 100, "list_pointer": "/messages", "item": {...} | "{{to.digits}}", "same_text": false}`.
    public struct Batch: Sendable, Decodable {
        /// The most recipients in one request, 1...10000 (the adapter's `maxBatch`).
        public var max: Int
        /// JSON pointer to the list in `body.template`; the template holds an empty array there (`"messages": []`).
        public var listPointer: String
        /// The JSON template for one recipient: an object (`{"to": "{{to.digits}}", "ref": "{{id}}"}`) or a string (`"{{to.national}}"`).
        public var item: JSONValue
        /// True when the API takes one text for all its numbers (eSMS bulk, SpeedSMS): only messages with the
        /// same text and encoding share a request. Default false.
        public var sameText: Bool?
        /// The fewest recipients the API takes in one request (eSMS advertising: 30, code 107 below): the
        /// dispatcher does not send a smaller batch while more may come (see the README's limits section).
        public var min: Int?
        /// The carrier a remainder below `min` moves to; without one the remainder fails, naming the minimum.
        public var remainderCarrier: String?
        enum CodingKeys: String, CodingKey {
            case max, item, min
            case listPointer = "list_pointer", sameText = "same_text", remainderCarrier = "remainder_carrier"
        }
    }

    /// How an answer becomes an outcome: `rules` first, then `default_class`, then Loa's defaults.
    public struct Response: Sendable, Decodable {
        /// Tried in order; the first rule whose conditions all hold gives the class.
        public var rules: [Rule]?
        /// The class when no rule matches. Without it: 2xx → temporary ("unrecognized answer"), 429 and 503 →
        /// throttled, 401 and 403 → unauthorized (waits without spending an attempt; the breaker opens), other 4xx →
        /// permanent, anything else → temporary.
        public var defaultClass: String?
        /// JSON pointer to the gateway's id for the request (eSMS `/SMSID`, SpeedSMS `/data/tranId`); numbers
        /// become their text. Without a per-recipient id each message's gateway id is `"<id>:<to.digits>"`.
        public var messageID: String?
        /// JSON pointer to the gateway's error text (`/error`, `/message`), added to failure details.
        public var detail: String?
        /// Per-recipient results of a batch API.
        public var results: Results?
        /// Numbers the gateway refused in an otherwise answered request.
        public var rejected: Rejected?
        enum CodingKeys: String, CodingKey {
            case rules, detail, results, rejected
            case defaultClass = "default_class", messageID = "message_id"
        }
    }

    /// `{"status": "200", "pointer": "/CodeResult", "equals": "100", "class": "accepted"}`.
    public struct Rule: Sendable, Decodable {
        /// `200` (one code), `2xx` (a class of codes) or `any` (default `any`).
        public var status: String?
        /// JSON pointer into the answer (into the item, for `results.rules`); without `equals`/`in` the value
        /// only has to exist.
        public var pointer: String?
        /// The value at `pointer` must be this text (numbers and booleans compare as written: `100`, `true`).
        public var equals: String?
        /// The value at `pointer` must be one of these.
        public var oneOf: [String]?
        /// A regular expression (ICU syntax) that must match somewhere in the raw answer body.
        public var regex: String?
        /// `accepted`, `temporary`, `throttled`, `permanent` or `unauthorized`.
        public var outcome: String
        enum CodingKeys: String, CodingKey {
            case status, pointer, equals, regex
            case oneOf = "in", outcome = "class"
        }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            status = try c.decodeLooseStringIfPresent(forKey: .status)
            pointer = try c.decodeIfPresent(String.self, forKey: .pointer)
            equals = try c.decodeLooseStringIfPresent(forKey: .equals)
            oneOf = try c.decodeLooseStringsIfPresent(forKey: .oneOf)
            regex = try c.decodeIfPresent(String.self, forKey: .regex)
            outcome = try c.decode(String.self, forKey: .outcome)
        }
    }

    /// `{"pointer": "/results", "match": "ref", "ref_pointer": "/ref", "id_pointer": "/id", "rules": [...]}`.
    ///
    /// A message may own several items (the same ref or number): a gateway that answers one item per SMS part
    /// (Vonage's `messages[]`). The first item's id is then the message's gateway id and all of them, in answer
    /// order, its `partIDs`; the message takes the class of its first item that `rules` do not find accepted.
    public struct Results: Sendable, Decodable {
        /// JSON pointer to the array of per-recipient results.
        public var pointer: String
        /// `ref`: an item belongs to the message whose `{{id}}` equals the item's `ref_pointer` value;
        /// `to`: to the message whose number equals the item's `to_pointer` value (any written form, compared on
        /// the last 9 digits: `0912345678`, `84912345678` and `+84 912 345 678` are one number);
        /// `index`: the n-th item belongs to the n-th message of the request.
        public var match: String
        /// For `match: ref`: pointer in the item to the echoed `{{id}}`.
        public var refPointer: String?
        /// For `match: to`: pointer in the item to the recipient's number.
        public var toPointer: String?
        /// Pointer in the item to the gateway's id for that recipient.
        public var idPointer: String?
        /// Pointer in the item to its error text, added to failure details.
        public var detailPointer: String?
        /// Rules applied to the item (pointers relative to it, `status` to the HTTP status). No rule matching
        /// means temporary; no rules at all means every listed item is accepted. A message with no item is temporary.
        public var rules: [Rule]?
        enum CodingKeys: String, CodingKey {
            case pointer, match, rules
            case refPointer = "ref_pointer", toPointer = "to_pointer", idPointer = "id_pointer", detailPointer = "detail_pointer"
        }
    }

    /// `{"pointer": "/data/invalidPhone"}` or `{"pointer": ["/data/invalidPhone", "/invalidPhone"]}`: lists of
    /// numbers (any written form: compared on their last 9 digits) that become permanent ("gateway rejected the
    /// number") while the rest of the request keeps its class.
    public struct Rejected: Sendable, Decodable {
        public var pointer: [String]
        enum CodingKeys: String, CodingKey { case pointer }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            pointer = try c.decodeLooseStringsIfPresent(forKey: .pointer) ?? []
        }
    }

    /// How receipts posted to `/dlr/<carrier>` are read.
    public struct Receipts: Sendable, Decodable {
        /// `json` (the request body), `form` or `query` (the query merged with a form body).
        public var format: String
        /// For `json`: pointer to an array of receipts in one request (absent: the body is one receipt).
        public var itemsPointer: String?
        /// `loa` (the id is Loa's message id, echoed from `{{id}}`) or `gateway` (the gateway's id).
        public var key: String
        /// Pointer (json) or field name (form, query) of the id. For `json`, a name without a leading `/` reads
        /// the query instead (`"m"`: Loa's id in the receipt URL, for gateways that echo nothing); likewise for
        /// `gateway_id`, `status` and `detail`. Two or more (`["SMSID", "phonenumber"]`) are
        /// joined with `:`, every one after the first read as a phone number and written as E.164 digits
        /// (`0912…` → `84912…`): that matches the `"<request id>:<to.digits>"` gateway ids of batch APIs.
        public var id: [String]
        /// Pointer or field of the gateway's own message id, logged with the receipt (optional).
        public var gatewayID: String?
        /// Pointer or field of the status.
        public var status: String
        /// The gateway's status value to a Loa receipt status: `buffered`, `smsc-accepted`, `delivered`,
        /// `undelivered` or `smsc-rejected`. The key `*` catches every other value; without it an unknown value
        /// is refused (HTTP 400).
        public var statuses: [String: String]
        /// Pointer or field of an error code or text for the log (optional).
        public var detail: String?
        /// The body Loa answers the gateway with (default `OK`).
        public var ack: String?
        /// Callbacks that report a whole request, not a message (eSMS advertising: `SendSuccess`, `SendFailed`,
        /// no phone number).
        public var aggregate: Aggregate?
        enum CodingKeys: String, CodingKey {
            case format, key, id, status, statuses, detail, ack, aggregate
            case itemsPointer = "items_pointer", gatewayID = "gateway_id"
        }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            format = try c.decode(String.self, forKey: .format)
            itemsPointer = try c.decodeIfPresent(String.self, forKey: .itemsPointer)
            key = try c.decode(String.self, forKey: .key)
            id = try c.decodeLooseStringsIfPresent(forKey: .id) ?? []
            gatewayID = try c.decodeIfPresent(String.self, forKey: .gatewayID)
            status = try c.decode(String.self, forKey: .status)
            statuses = try c.decode([String: String].self, forKey: .statuses)
            detail = try c.decodeIfPresent(String.self, forKey: .detail)
            ack = try c.decodeIfPresent(String.self, forKey: .ack)
            aggregate = try c.decodeIfPresent(Aggregate.self, forKey: .aggregate)
        }
    }

    /// `{"when": "/SendSuccess", "request_id": "/SMSID", "counts": ["/SendSuccess", "/SendFailed"]}`.
    ///
    /// A receipt request in which `when` is present (a pointer for `json`, a field name for `form`/`query`, as in
    /// `receipts`) is an aggregate callback: Loa writes one `request-receipt` line to the delivery log (the
    /// request id, how many of Loa's messages are `sent` under it, and each count as `name=value`), asks the
    /// carrier's `poll` status API for that request's messages at once, and answers `ack`. It needs `poll`.
    public struct Aggregate: Sendable, Decodable {
        public var when: String
        /// Pointer or field of the gateway's request id: the id of the send answer (`response.message_id`), so
        /// the request's messages are those whose gateway id is it or starts with `<it>:`.
        public var requestID: String
        /// Pointers or fields logged with their values (optional).
        public var counts: [String]
        enum CodingKeys: String, CodingKey, CaseIterable {
            case when, counts
            case requestID = "request_id"
        }
        public static var keyNames: [String] { CodingKeys.allCases.map(\.stringValue) }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            when = try c.decode(String.self, forKey: .when)
            requestID = try c.decode(String.self, forKey: .requestID)
            counts = try c.decodeLooseStringsIfPresent(forKey: .counts) ?? []
        }
    }

    /// Receipts by polling a status API: which messages, how often, the request, and how its answer reads.
    ///
    /// ```
    /// poll: { url: "https://api.example/status?ids={{gateway_ids}}", max_ids: 50, interval_seconds: 60,
    ///         after_seconds: 30, max_age_seconds: 86400, max_requests: 10,
    ///         answer: { items_pointer: "/items", id: "/id", status: "/status", statuses: {"DELIVRD": "delivered", "*": "buffered"} } }
    /// ```
    ///
    /// Every `interval_seconds` the poller takes the carrier's messages that are `sent` with a gateway id, sent at
    /// least `after_seconds` and at most `max_age_seconds` ago, and not polled in the last interval (the
    /// longest-unpolled first), and asks about them: at most `max_requests` requests of at most `max_ids` ids
    /// each, one after the other, each bounded by the carrier's `timeout_seconds`. An answer's items become
    /// receipts through the same store path as the receipt endpoint (final statuses settle the message,
    /// intermediate ones are events); items for ids not asked about are ignored. Past `max_age_seconds` a message
    /// is no longer polled and the receipt timeout (`receipt_timeout_hours`) ends it `unknown`.
    ///
    /// Placeholders (besides `{{secret.NAME}}`): `{{gateway_id}}` (the message's gateway id; only with `max_ids`
    /// 1), `{{gateway_ids}}` (the ids joined by `ids_separator`, default `,`), `"{{gateway_ids|list}}"` (as the
    /// whole of a JSON template string: a JSON list of strings), `{{request_id}}` (with `by: "request"`).
    /// Values are escaped as in the send request (percent-encoded in the URL and form fields, JSON-escaped).
    ///
    /// `by: "request"` polls per send request instead (for APIs whose status call takes the request's id:
    /// eSMS `GetSmsSentData`): one poll per distinct request id (the gateway id's part before the first `:`,
    /// which is the whole id of a request without per-recipient ids), and `max_ids` does not apply.
    public struct Poll: Sendable, Decodable {
        public var method: String?
        public var url: String
        public var headers: [String: String]?
        public var basicAuth: BasicAuth?
        public var body: Body?
        /// `message` (default) or `request`.
        public var by: String?
        /// Ids per request, 1...1000 (default 1).
        public var maxIDs: Int?
        /// How `{{gateway_ids}}` joins them (default `,`).
        public var idsSeparator: String?
        /// Seconds between two polls of a message (default 60; 1...86400).
        public var intervalSeconds: Double?
        /// The first poll comes this long after the send (default `interval_seconds`; 0...86400).
        public var afterSeconds: Double?
        /// Stop polling a message this long after its send (default 86400; at least `after_seconds`).
        public var maxAgeSeconds: Double?
        /// Requests per carrier per interval (default 10; 1...1000).
        public var maxRequests: Int?
        public var answer: PollAnswer
        enum CodingKeys: String, CodingKey, CaseIterable {
            case method, url, headers, body, by, answer
            case basicAuth = "basic_auth", maxIDs = "max_ids", idsSeparator = "ids_separator", intervalSeconds = "interval_seconds"
            case afterSeconds = "after_seconds", maxAgeSeconds = "max_age_seconds", maxRequests = "max_requests"
        }
        public static var keyNames: [String] { CodingKeys.allCases.map(\.stringValue) }

        public var interval: Double { intervalSeconds ?? 60 }
        public var after: Double { afterSeconds ?? interval }
        public var maxAge: Double { maxAgeSeconds ?? 86400 }
        public var idsPerRequest: Int { by == "request" ? 1 : min(max(maxIDs ?? 1, 1), 1000) }
        public var requestsPerInterval: Int { min(max(maxRequests ?? 10, 1), 1000) }
    }

    /// `{"items_pointer": "/items", "id": "/id", "status": "/status", "statuses": {...}, "detail": "/error"}`.
    public struct PollAnswer: Sendable, Decodable {
        /// Pointer to the list of per-message items (absent: the answer is one item).
        public var itemsPointer: String?
        /// Pointer(s) in the item to the gateway id; two or more are joined with `:`, every one after the first read
        /// as a phone number and written as E.164 digits, as in `receipts.id` (`["/SMSID", "/Phone"]` builds the
        /// `"<request id>:<84…>"` ids of batch APIs). With `by: "request"`, one pointer to a number alone (eSMS's
        /// `ReceiverList[].Phone`) matches the message `"<request id>:<84…>"` of the request asked about.
        public var id: [String]
        /// Pointer in the item to the status.
        public var status: String
        /// The status to a Loa receipt status, as in `receipts.statuses` (`*` for every other value; without it an
        /// item with an unknown status is skipped and asked about again next interval).
        public var statuses: [String: String]
        /// Pointer in the item to an error code or text for the log (optional).
        public var detail: String?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case id, status, statuses, detail
            case itemsPointer = "items_pointer"
        }
        public static var keyNames: [String] { CodingKeys.allCases.map(\.stringValue) }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            itemsPointer = try c.decodeIfPresent(String.self, forKey: .itemsPointer)
            id = try c.decodeLooseStringsIfPresent(forKey: .id) ?? []
            status = try c.decode(String.self, forKey: .status)
            statuses = try c.decode([String: String].self, forKey: .statuses)
            detail = try c.decodeIfPresent(String.self, forKey: .detail)
        }
    }
}

extension KeyedDecodingContainer {
    /// A string, or a number or boolean written without quotes (`"equals": 100`).
    func decodeLooseStringIfPresent(forKey key: Key) throws -> String? {
        guard let v = try decodeIfPresent(JSONValue.self, forKey: key) else { return nil }
        guard let s = v.scalarText else {
            throw DecodingError.typeMismatch(String.self, .init(codingPath: codingPath + [key], debugDescription: "expected a string"))
        }
        return s
    }

    /// One loose string or a list of them.
    func decodeLooseStringsIfPresent(forKey key: Key) throws -> [String]? {
        guard let v = try decodeIfPresent(JSONValue.self, forKey: key) else { return nil }
        if let s = v.scalarText { return [s] }
        if case .array(let items) = v {
            let strings = items.compactMap(\.scalarText)
            if strings.count == items.count { return strings }
        }
        throw DecodingError.typeMismatch([String].self, .init(codingPath: codingPath + [key], debugDescription: "expected a string or a list of strings"))
    }
}

// MARK: - Validation

extension GenericGatewaySpec.Poll {
    /// The problems of a `poll` section, with paths from the carrier entry (`poll.answer.statuses.X`).
    func validate(secretNames: Set<String>?) -> [(field: String, reason: String)] {
        var problems: [(field: String, reason: String)] = []
        func add(_ f: String, _ r: String) { problems.append((f, r)) }
        let batchOfIDs = (maxIDs ?? 1) > 1
        func checkTemplate(_ f: String, _ s: String, json: Bool = false) {
            for problem in PollTemplate.problems(in: s, secretNames: secretNames, listAllowed: json, single: !batchOfIDs && by != "request",
                                                 byRequest: by == "request") {
                add(f, problem)
            }
        }
        func checkJSON(_ f: String, _ v: JSONValue) { GenericGatewaySpec.eachString(in: v, at: f) { checkTemplate($0, $1, json: true) } }
        func checkPointer(_ f: String, _ p: String?) { if let r = GenericGatewaySpec.pointerProblem(p) { add(f, r) } }
        GenericGatewaySpec.requestProblems(prefix: "poll.", method: method, url: url, headers: headers, basicAuth: basicAuth, body: body,
                                           add: add, checkTemplate: { checkTemplate($0, $1) }, checkJSON: checkJSON)
        if let b = by, b != "message" && b != "request" { add("poll.by", "unknown value '\(b)' (message, request)") }
        if let n = maxIDs {
            if !(1...1000).contains(n) { add("poll.max_ids", "must be 1...1000") }
            if by == "request" { add("poll.max_ids", "not with by request (one request id per poll)") }
        }
        if let s = idsSeparator, s.isEmpty { add("poll.ids_separator", "must not be empty") }
        if let v = intervalSeconds, !(v >= 1 && v <= 86400) { add("poll.interval_seconds", "must be 1...86400") }
        if let v = afterSeconds, !(v >= 0 && v <= 86400) { add("poll.after_seconds", "must be 0...86400") }
        if let v = maxAgeSeconds, !(v >= 1 && v <= 30 * 86400) { add("poll.max_age_seconds", "must be 1...2592000 (30 days)") }
        if maxAgeSeconds != nil, maxAge < after { add("poll.max_age_seconds", "must be at least after_seconds") }
        if let v = maxRequests, !(1...1000).contains(v) { add("poll.max_requests", "must be 1...1000") }
        checkPointer("poll.answer.items_pointer", answer.itemsPointer)
        if answer.id.isEmpty { add("poll.answer.id", "required") }
        for (i, p) in answer.id.enumerated() { checkPointer(answer.id.count == 1 ? "poll.answer.id" : "poll.answer.id.\(i)", p) }
        checkPointer("poll.answer.status", answer.status)
        checkPointer("poll.answer.detail", answer.detail)
        if answer.statuses.isEmpty { add("poll.answer.statuses", "required") }
        for (k, v) in answer.statuses.sorted(by: { $0.key < $1.key }) where ReceiptStatusName.parse(v) == nil {
            add("poll.answer.statuses.\(k)", "unknown status '\(v)' (buffered, smsc-accepted, delivered, undelivered, smsc-rejected)")
        }
        return problems
    }
}

extension GenericGatewaySpec {
    /// Every problem in the spec, each with its field path relative to the carrier entry (`batch.max`,
    /// `response.rules.2.class`, `body.template.messages.0.to`), for `file:line: carriers.N.<field>: reason`.
    ///
    /// - Parameter secretNames: the names in the carrier's `secrets`; when given, `{{secret.NAME}}` must name one.
    public func validate(secretNames: Set<String>? = nil) -> [(field: String, reason: String)] {
        var problems: [(field: String, reason: String)] = []
        func add(_ f: String, _ r: String) { problems.append((f, r)) }
        func checkTemplate(_ f: String, _ s: String, json: Bool = false) {
            for problem in TemplateString.problems(in: s, secretNames: secretNames, numberAllowed: json) { add(f, problem) }
        }
        func checkJSON(_ f: String, _ v: JSONValue) { GenericGatewaySpec.eachString(in: v, at: f) { checkTemplate($0, $1, json: true) } }
        func checkPointer(_ f: String, _ p: String?) { if let r = GenericGatewaySpec.pointerProblem(p) { add(f, r) } }
        func checkRules(_ f: String, _ rules: [Rule]?) {
            for (i, r) in (rules ?? []).enumerated() {
                if let s = r.status, StatusPattern(s) == nil { add("\(f).\(i).status", "'\(s)' is not a status (write 200, 2xx or any)") }
                checkPointer("\(f).\(i).pointer", r.pointer)
                if r.equals != nil && r.oneOf != nil { add("\(f).\(i)", "give either equals or in, not both") }
                if (r.equals != nil || r.oneOf != nil) && r.pointer == nil { add("\(f).\(i).pointer", "equals and in need a pointer") }
                if let re = r.regex {
                    do { _ = try NSRegularExpression(pattern: re) } catch { add("\(f).\(i).regex", "not a valid regular expression") }
                }
                if OutcomeClass(rawValue: r.outcome) == nil { add("\(f).\(i).class", "unknown class '\(r.outcome)' (accepted, temporary, throttled, permanent, unauthorized)") }
            }
        }

        Self.requestProblems(prefix: "", method: method, url: url, headers: headers, basicAuth: basicAuth, body: body,
                             add: add, checkTemplate: { checkTemplate($0, $1) }, checkJSON: checkJSON)
        if let batch {
            if !(1...10000).contains(batch.max) { add("batch.max", "must be 1...10000") }
            checkJSON("batch.item", batch.item)
            switch batch.item {
            case .object, .string: break
            default: add("batch.item", "must be an object or a string")
            }
            if let p = JSONPointer(batch.listPointer) {
                if let t = body?.template, body?.format == "json" {
                    if p.tokens.isEmpty || p.resolve(t) != .array([]) {
                        add("batch.list_pointer", "'\(batch.listPointer)' must name an empty array in body.template")
                    }
                } else {
                    add("batch", "needs a body with format json")
                }
            } else {
                checkPointer("batch.list_pointer", batch.listPointer)
            }
        }
        if let r = response {
            checkRules("response.rules", r.rules)
            if let d = r.defaultClass, OutcomeClass(rawValue: d) == nil { add("response.default_class", "unknown class '\(d)' (accepted, temporary, throttled, permanent, unauthorized)") }
            checkPointer("response.message_id", r.messageID)
            checkPointer("response.detail", r.detail)
            if let res = r.results {
                checkPointer("response.results.pointer", res.pointer)
                switch res.match {
                case "ref": if res.refPointer == nil { add("response.results.ref_pointer", "required for match ref") }
                case "to": if res.toPointer == nil { add("response.results.to_pointer", "required for match to") }
                case "index": break
                default: add("response.results.match", "unknown match '\(res.match)' (ref, to, index)")
                }
                if res.refPointer != nil && res.match != "ref" { add("response.results.ref_pointer", "only for match ref") }
                if res.toPointer != nil && res.match != "to" { add("response.results.to_pointer", "only for match to") }
                checkPointer("response.results.ref_pointer", res.refPointer)
                checkPointer("response.results.to_pointer", res.toPointer)
                checkPointer("response.results.id_pointer", res.idPointer)
                checkPointer("response.results.detail_pointer", res.detailPointer)
                checkRules("response.results.rules", res.rules)
            }
            for (i, p) in (r.rejected?.pointer ?? []).enumerated() { checkPointer("response.rejected.pointer.\(i)", p) }
            if let rej = r.rejected, rej.pointer.isEmpty { add("response.rejected.pointer", "required") }
        }
        if let rc = receipts {
            let json = rc.format == "json"
            if !["json", "form", "query"].contains(rc.format) { add("receipts.format", "unknown format '\(rc.format)' (json, form, query)") }
            if rc.itemsPointer != nil && !json { add("receipts.items_pointer", "only for format json") }
            if json {
                // Names without a leading `/` are query fields; the rest must be pointers.
                func checkName(_ f: String, _ p: String?) { if let p, p.hasPrefix("/") { checkPointer(f, p) } }
                checkPointer("receipts.items_pointer", rc.itemsPointer)
                for (i, p) in rc.id.enumerated() { checkName(rc.id.count == 1 ? "receipts.id" : "receipts.id.\(i)", p) }
                checkName("receipts.status", rc.status)
                checkName("receipts.detail", rc.detail)
                checkName("receipts.gateway_id", rc.gatewayID)
            }
            if !["loa", "gateway"].contains(rc.key) { add("receipts.key", "unknown key '\(rc.key)' (loa, gateway)") }
            if rc.id.isEmpty { add("receipts.id", "required") }
            if rc.key == "loa" && rc.id.count > 1 { add("receipts.id", "key loa takes one id field") }
            if rc.statuses.isEmpty { add("receipts.statuses", "required") }
            for (k, v) in rc.statuses.sorted(by: { $0.key < $1.key }) where ReceiptStatusName.parse(v) == nil {
                add("receipts.statuses.\(k)", "unknown status '\(v)' (buffered, smsc-accepted, delivered, undelivered, smsc-rejected)")
            }
            if let ag = rc.aggregate {
                if json {
                    func checkName(_ f: String, _ p: String) { if p.hasPrefix("/") { checkPointer(f, p) } }
                    checkName("receipts.aggregate.when", ag.when)
                    checkName("receipts.aggregate.request_id", ag.requestID)
                    for (i, c) in ag.counts.enumerated() { checkName("receipts.aggregate.counts.\(i)", c) }
                }
                if ag.when.isEmpty { add("receipts.aggregate.when", "required") }
                if ag.requestID.isEmpty { add("receipts.aggregate.request_id", "required") }
                if poll == nil { add("receipts.aggregate", "needs poll: an aggregate callback is answered by polling the request's messages") }
            }
        }
        if let p = poll { problems += p.validate(secretNames: secretNames) }
        if let v = validity {
            if let lo = v.minSeconds, !(lo >= 0 && lo <= 30 * 86400) { add("validity_range.min_seconds", "must be 0...2592000 (30 days)") }
            if let hi = v.maxSeconds, !(hi >= 1 && hi <= 30 * 86400) { add("validity_range.max_seconds", "must be 1...2592000 (30 days)") }
            if let lo = v.minSeconds, let hi = v.maxSeconds, lo > hi { add("validity_range", "min_seconds must not be above max_seconds") }
            if v.minSeconds == nil && v.maxSeconds == nil { add("validity_range", "give min_seconds, max_seconds or both") }
        }
        return problems
    }
}

extension GenericGatewaySpec {
    /// The problems of an HTTP request's own parts (method, url, headers, basic_auth, body), the same for the send
    /// request and a `poll` request; `prefix` is `""` or `"poll."`.
    static func requestProblems(prefix: String, method: String?, url: String, headers: [String: String]?, basicAuth: BasicAuth?, body: Body?,
                                add: (String, String) -> Void, checkTemplate: (String, String) -> Void,
                                checkJSON: (String, JSONValue) -> Void) {
        let m = method ?? (body == nil ? "GET" : "POST")
        if !["GET", "POST", "PUT"].contains(m) { add(prefix + "method", "unknown method '\(m)' (GET, POST, PUT)") }
        if !(url.hasPrefix("http://") || url.hasPrefix("https://")) { add(prefix + "url", "must start with http:// or https://") }
        checkTemplate(prefix + "url", url)
        for (name, value) in (headers ?? [:]).sorted(by: { $0.key < $1.key }) {
            if name.isEmpty || name.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F || $0 == UInt8(ascii: ":") }) {
                add(prefix + "headers.\(name)", "not a valid header name")
            }
            checkTemplate(prefix + "headers.\(name)", value)
        }
        if let a = basicAuth {
            checkTemplate(prefix + "basic_auth.username", a.username)
            checkTemplate(prefix + "basic_auth.password", a.password)
            if a.username.contains(":") { add(prefix + "basic_auth.username", "must not contain ':'") }
        }
        if let b = body {
            if m == "GET" { add(prefix + "body", "a GET request has no body: set method to POST or PUT") }
            switch b.format {
            case "json":
                if let t = b.template { checkJSON(prefix + "body.template", t) } else { add(prefix + "body.template", "required for format json") }
                if b.fields != nil { add(prefix + "body.fields", "only for format form") }
            case "form":
                if let fields = b.fields {
                    for (k, v) in fields.sorted(by: { $0.key < $1.key }) { checkTemplate(prefix + "body.fields.\(k)", v) }
                } else {
                    add(prefix + "body.fields", "required for format form")
                }
                if b.template != nil { add(prefix + "body.template", "only for format json") }
            default: add(prefix + "body.format", "unknown format '\(b.format)' (json, form)")
            }
        }
    }
}

extension GenericGatewaySpec {
    /// Every string in a JSON template with its path (`body.template.messages.0.to`), for the template checks.
    static func eachString(in v: JSONValue, at f: String, _ visit: (String, String) -> Void) {
        switch v {
        case .string(let s): visit(f, s)
        case .array(let items): for (i, x) in items.enumerated() { eachString(in: x, at: "\(f).\(i)", visit) }
        case .object(let members): for (k, x) in members { eachString(in: x, at: "\(f).\(k)", visit) }
        default: break
        }
    }

    /// Why `p` is not a JSON pointer, or nil when it is one (or absent).
    static func pointerProblem(_ p: String?) -> String? {
        guard let p, JSONPointer(p) == nil else { return nil }
        return "'\(p)' is not a JSON pointer (write \"\" or /name/0/name, ~0 for ~ and ~1 for /)"
    }
}
