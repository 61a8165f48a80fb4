/// The outcome of a join.
public enum JoinResult: Sendable {
    /// Accept; the reply's `response` is the given value (`{}` by default).
    case ok(JSONValue = .emptyObject)
    /// Refuse; the reply's `response` is the given value, conventionally `{"reason": "…"}`.
    case error(JSONValue)

    /// Refuses with `{"reason": reason}`.
    public static func refuse(_ reason: String) -> JoinResult { .error(["reason": .string(reason)]) }
}

/// What to do after an incoming event.
public enum HandleInResult: Sendable {
    /// Reply to the event's ref with a status (`ok`, `error`, or any string) and a response.
    case reply(status: String, response: Payload)
    /// Send nothing back (the client's push may time out on its side, as in Phoenix).
    case noReply
    /// Stop the channel normally (the client gets `phx_close` and does not rejoin), replying first if given.
    case stop(reply: (status: String, response: Payload)?)

    /// Reply `ok` with a JSON response.
    public static func ok(_ response: JSONValue = .emptyObject) -> HandleInResult { .reply(status: "ok", response: .json(response)) }
    /// Reply `error` with a JSON response.
    public static func error(_ response: JSONValue) -> HandleInResult { .reply(status: "error", response: .json(response)) }
    /// Reply `error` with `{"reason": reason}`.
    public static func error(reason: String) -> HandleInResult { .error(["reason": .string(reason)]) }
}

/// What to do with an intercepted broadcast for one subscriber.
public enum HandleOutResult: Sendable {
    /// Push this payload to the client (stamped with the channel's join ref).
    case push(Payload)
    /// Send nothing to this client.
    case skip
}

/// Why a channel ended.
public enum TerminateReason: Sendable, Equatable {
    /// The client sent `phx_leave`.
    case left
    /// The connection closed.
    case closed
    /// The same topic was joined again on this connection; this instance was replaced.
    case replaced
    /// The channel stopped itself normally (`HandleInResult.stop`).
    case stopped
    /// A callback threw; the description of the error.
    case crashed(String)
}

/// A channel: the code that runs for a topic (or a topic pattern) on each connection that joins it.
///
/// One value serves every (connection, topic) pair routed to it; per-pair state lives in
/// `socket.assigns`. For one pair, callbacks run one at a time and in order, and may be `async`.
/// A thrown error ends only that pair: its client gets `phx_error` and may rejoin.
public protocol TopicChannel: Sendable {
    /// Decides whether this connection may join `topic`. `socket.assigns` starts as the connection's assigns.
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult

    /// Handles an event the client sent to this topic.
    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult

    /// Broadcast events this channel wants to see per subscriber (filter or rewrite) instead of the
    /// encode-once fast lane. Each intercepted broadcast costs one callback and one encode per subscriber.
    var intercepts: Set<String> { get }

    /// Handles an intercepted broadcast for this subscriber.
    func handleOut(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleOutResult

    /// Called once when the channel ends, for any reason.
    func terminate(reason: TerminateReason, socket: ChannelSocket) async
}

extension TopicChannel {
    public func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        .error(reason: "unhandled event")
    }
    public var intercepts: Set<String> { [] }
    public func handleOut(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleOutResult {
        .push(payload)
    }
    public func terminate(reason: TerminateReason, socket: ChannelSocket) async {}
}
