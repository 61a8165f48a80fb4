import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Switchboard
import SwitchboardTransports

/// The HTTP API of a hub: publish, inspect topics, disconnect users. Every route needs
/// `Authorization: Bearer <apiKey>`; errors are `{"error": {"code", "message"}}`.
///
/// | route | body | answer |
/// | --- | --- | --- |
/// | `POST /api/broadcast` | `{"topic","event","payload"}` or `{"messages": [ … ]}` | 202 `{"published": n}` |
/// | `GET /api/topics` | | 200 `{"topics": [{"topic", "subscribers"}]}` (cluster totals with `clusterCounts`, else this node) |
/// | `GET /api/topics/{topic}` | | 200 `{"topic", "subscribers"}` (with `users`, `connections` when it has presences) |
/// | `GET /api/topics/{topic}/presence` | | 200 `{"topic", "users", "connections", "presences"}` (`?count=1`: no `presences`) |
/// | `GET /api/topics/{topic}/history` | `?since=<epoch>:<offset>&limit=N&reverse=true` | 200 `{"topic", "epoch", "offset", "messages": [{"offset", "event", "payload", "time"}]}`; 409 `epoch_mismatch`; 404 `no_history` |
/// | `POST /api/disconnect` | `{"user": "42"}` or `{"socket_id": "…"}` | 202 `{}` |
public struct HubAPI: Sendable {
    public let hub: Hub
    public let apiKey: String
    /// Largest accepted request body.
    public var maxBodySize = 1 << 20
    /// Most messages in one batch publish.
    public var maxBatchSize = 1000
    /// The socket id of a user for `POST /api/disconnect {"user": …}`.
    public var socketID: @Sendable (String) -> String = { "user_socket:\($0)" }
    /// Subscriber counts summed over every node (e.g. `RedisBroker.clusterSubscriberCounts`), for
    /// the topic routes; `nil` (or a failure) shows this node's counts.
    public var clusterCounts: (@Sendable () async throws -> [String: Int])?
    /// Checks the topic of each message before anything is published; a thrown `APIError` is the
    /// answer (e.g. 422 `unknown_namespace`), and the whole batch is refused. `nil`: any topic.
    public var validateTopic: (@Sendable (String) throws -> Void)?

    /// Recent publishes made with an `Idempotency-Key` (shared by copies of this API).
    public var idempotentPublishes = IdempotentPublishes()

    public init(hub: Hub, apiKey: String) {
        self.hub = hub
        self.apiKey = apiKey
    }

    /// A random key for servers started without one.
    public static func generateKey() -> String {
        (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// Adds the routes under `/api` to `router`.
    public func register<Context: RequestContext>(on router: Router<Context>) {
        registerOpenAPI(on: router)
        let api = router.group("api").add(middleware: APIKeyMiddleware<Context>(key: apiKey))
        api.post(RouterPath(String(HubAPI.broadcastPath.dropFirst("/api/".count)))) { request, _ in try await self.broadcast(request) }
        api.get("topics") { _, _ in await self.topics() }
        api.get("topics/{topic}") { _, context in
            let topic = Self.topic(context)
            let count = await self.counts()[topic] ?? 0
            return Self.json(.ok, self.topicEntry(topic, subscribers: count))
        }
        api.get("topics/{topic}/presence") { request, context in
            let countOnly = ["1", "true"].contains(request.uri.queryParameters.get("count") ?? "")
            return self.presence(Self.topic(context), countOnly: countOnly)
        }
        api.get("topics/{topic}/history") { request, context in
            try self.history(Self.topic(context), query: request.uri.queryParameters)
        }
        api.post("disconnect") { request, _ in try await self.disconnect(request) }
    }

    /// `GET /api/topics/{topic}/history?since=<epoch>:<offset>&limit=N&reverse=true`.
    func history(_ topic: String, query: Hummingbird.Parameters) throws -> Response {
        var since: StreamPosition?
        if let text = query.get("since") {
            guard let position = StreamPosition(text) else {
                throw APIError(.badRequest, "invalid_request", "since must be <epoch>:<offset>, as a broadcast's ref carries it")
            }
            since = position
        }
        var limit: Int?
        if let text = query.get("limit") {
            guard let value = Int(text), value >= 0 else { throw APIError(.badRequest, "invalid_request", "limit must be a whole number ≥ 0") }
            limit = value
        }
        let reverse = ["1", "true"].contains(query.get("reverse") ?? "")
        let read: (position: StreamPosition, messages: [StoredMessage])?
        do {
            read = try hub.history.messages(topic: topic, since: since, limit: limit, reverse: reverse)
        } catch {
            guard case .epochMismatch(let current) = error else { throw error }
            throw APIError(.conflict, "epoch_mismatch", "since is of epoch \(since?.epoch ?? ""); the topic's stream is now \(current)")
        }
        guard let read else { throw APIError(.notFound, "no_history", "topic \(topic) keeps no history") }
        let messages: [JSONValue] = read.messages.map { message in
            var entry: [String: JSONValue] = ["offset": .int(Int64(message.offset)), "event": .string(message.event), "time": .int(message.time)]
            switch message.payload {
            case .json(let json): entry["payload"] = json
            case .binary(let bytes): entry["payload_base64"] = .string(Data(bytes.readableBytesView).base64EncodedString())
            }
            return .object(entry)
        }
        return Self.json(
            .ok,
            [
                "topic": .string(topic), "epoch": .string(read.position.epoch), "offset": .int(Int64(read.position.offset)),
                "messages": .array(messages),
            ]
        )
    }

    func broadcast(_ request: Request) async throws -> Response {
        let body = try await Self.collectBody(request, limit: maxBodySize)
        let answer = publishAnswer(body: body, idempotencyKey: request.headers[HTTPField.Name("Idempotency-Key")!])
        return Response(
            status: HTTPResponse.Status(code: answer.status),
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: answer.body)
        )
    }

    /// The answer to a publish of `count` messages.
    static func published(_ count: Int) -> JSONValue { ["published": .int(Int64(count))] }

    /// `POST /api/broadcast` without the HTTP around it: parses and checks `body` (one message or
    /// `{"messages": [ … ]}`), then publishes every message, or none when one is invalid. Returns how
    /// many were published; throws the `APIError` to answer with. Synchronous, so the connection's
    /// event loop can answer a publish without a task (`HTTPServerBuilder.switchboard(api:)`).
    public func publish(body buffer: ByteBuffer) throws -> Int {
        let body = try Self.parseJSON(buffer)
        let items: [JSONValue]
        if let messages = body["messages"] {
            guard let list = messages.arrayValue else { throw APIError(.unprocessableContent, "invalid_request", "messages must be an array") }
            guard list.count <= maxBatchSize else {
                throw APIError(.contentTooLarge, "batch_too_large", "at most \(maxBatchSize) messages per request")
            }
            items = list
        } else {
            items = [body]
        }
        // Validate everything first: a batch is published whole or not at all.
        var broadcasts: [Broadcast] = []
        for (index, item) in items.enumerated() {
            let at = items.count > 1 ? " (message \(index))" : ""
            guard let topic = item["topic"]?.stringValue, !topic.isEmpty else {
                throw APIError(.unprocessableContent, "invalid_request", "topic must be a non-empty string\(at)")
            }
            guard let event = item["event"]?.stringValue, !event.isEmpty else {
                throw APIError(.unprocessableContent, "invalid_request", "event must be a non-empty string\(at)")
            }
            guard !event.hasPrefix("phx_"), event != PhoenixEvent.disconnect else {
                throw APIError(.unprocessableContent, "reserved_event", "event \(event) is reserved\(at)")
            }
            try validateTopic?(topic)
            let payload = item["payload"] ?? .emptyObject
            guard payload.objectValue != nil else { throw APIError(.unprocessableContent, "invalid_request", "payload must be a JSON object\(at)") }
            var broadcast = Broadcast(topic: topic, event: event, payload: .json(payload))
            if let history = item["history"] {
                guard let keep = history.boolValue else {
                    throw APIError(.unprocessableContent, "invalid_request", "history must be true or false\(at)")
                }
                broadcast.recordsHistory = keep
            }
            broadcasts.append(broadcast)
        }
        for broadcast in broadcasts { hub.publish(broadcast) }
        return broadcasts.count
    }

    /// Cluster totals when available, else this node's counts.
    func counts() async -> [String: Int] {
        if let clusterCounts, let counts = try? await clusterCounts() { return counts }
        return hub.localTopics()
    }

    func topics() async -> Response {
        let topics = await counts().sorted { $0.key < $1.key }.map { topicEntry($0.key, subscribers: $0.value) }
        return Self.json(.ok, ["topics": .array(topics)])
    }

    /// The topic from the route (clients encode the `:` of `room:lobby`).
    static func topic(_ context: some RequestContext) -> String {
        let raw = context.parameters.get("topic") ?? ""
        return raw.removingPercentEncoding ?? raw
    }

    func topicEntry(_ topic: String, subscribers: Int) -> JSONValue {
        Self.topicEntry(topic, subscribers: subscribers, presence: hub.presence)
    }

    /// `{"topic", "subscribers"}`, with `users` and `connections` when the topic has presences
    /// (the API's topic listings; the server's dashboard shows the same).
    public static func topicEntry(_ topic: String, subscribers: Int, presence: Presence) -> JSONValue {
        var entry: [String: JSONValue] = ["topic": .string(topic), "subscribers": .int(Int64(subscribers))]
        let present = presence.count(topic)
        if present.connections > 0 {
            entry["users"] = .int(Int64(present.users))
            entry["connections"] = .int(Int64(present.connections))
        }
        return .object(entry)
    }

    /// `GET /api/topics/{topic}/presence`: the member list as `presence_state` carries it.
    func presence(_ topic: String, countOnly: Bool) -> Response {
        let count = hub.presence.count(topic)
        var body = ByteBuffer()
        body.writeStaticString("{\"topic\":")
        JSONWriter.writeString(topic, into: &body)
        body.writeString(",\"users\":\(count.users),\"connections\":\(count.connections)")
        if !countOnly {
            body.writeStaticString(",\"presences\":")
            var state = hub.presence.stateJSON(topic)
            body.writeBuffer(&state)
        }
        body.writeStaticString("}")
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }

    func disconnect(_ request: Request) async throws -> Response {
        let body = try await Self.readJSON(request, limit: 64 * 1024)
        if let user = body["user"]?.stringValue, !user.isEmpty {
            hub.disconnect(socketID: socketID(user))
        } else if let id = body["socket_id"]?.stringValue, !id.isEmpty {
            hub.disconnect(socketID: id)
        } else {
            throw APIError(.unprocessableContent, "invalid_request", "give a user or a socket_id")
        }
        return Self.json(.accepted, .emptyObject)
    }

    static func readJSON(_ request: Request, limit: Int) async throws -> JSONValue {
        try parseJSON(try await collectBody(request, limit: limit))
    }

    /// The whole request body, or 413 `body_too_large` past `limit` bytes.
    static func collectBody(_ request: Request, limit: Int) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: limit)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", "request body over \(limit) bytes")
        }
    }

    static func parseJSON(_ buffer: ByteBuffer) throws -> JSONValue {
        do {
            let value = try JSONParser.parse(buffer)
            guard value.objectValue != nil else { throw APIError(.badRequest, "invalid_json", "the body must be a JSON object") }
            return value
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(.badRequest, "invalid_json", "\(error)")
        }
    }

    /// Throws the 401 `APIError` unless `authorization` is `Bearer <key>`.
    static func checkKey(authorization: String?, key: String) throws {
        guard let token = ConnectRequest.bearerToken(authorization: authorization) else {
            throw APIError(.unauthorized, "unauthorized", "missing API key (Authorization: Bearer <key>)")
        }
        let given = SHA256.hash(data: Data(token.utf8))
        let expected = SHA256.hash(data: Data(key.utf8))
        // Comparing fixed-length digests keeps the comparison time independent of the key.
        guard given == expected else {
            throw APIError(.unauthorized, "unauthorized", "invalid API key")
        }
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: JSONWriter.buffer(value)))
    }
}

/// An API failure with a stable code, answered as `{"error": {"code", "message"}}`.
public struct APIError: Error, HTTPResponseError {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var headers: HTTPFields { [.contentType: "application/json"] }

    /// `{"error": {"code", "message"}}`, the body of every API failure.
    var body: JSONValue { ["error": ["code": .string(code), "message": .string(message)]] }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        HubAPI.json(status, body)
    }
}

/// Requires `Authorization: Bearer <key>` (compared in constant time); answers 401 otherwise.
public struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String

    public init(key: String) {
        self.key = key
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try HubAPI.checkKey(authorization: request.headers[.authorization], key: key)
        return try await next(request, context)
    }
}
