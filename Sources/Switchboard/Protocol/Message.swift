/// One Phoenix Channels message: the five fields every frame carries.
///
/// `joinRef` and `ref` are kept as JSON values so that they are echoed with the type the
/// client used (a string, an integer or `null`).
public struct Message: Sendable, Hashable {
    public var joinRef: JSONValue
    public var ref: JSONValue
    public var topic: String
    public var event: String
    public var payload: Payload

    public init(joinRef: JSONValue = .null, ref: JSONValue = .null, topic: String, event: String, payload: Payload) {
        self.joinRef = joinRef
        self.ref = ref
        self.topic = topic
        self.event = event
        self.payload = payload
    }
}

/// Event names reserved by the Phoenix protocol.
public enum PhoenixEvent {
    public static let join = "phx_join"
    public static let leave = "phx_leave"
    public static let reply = "phx_reply"
    public static let close = "phx_close"
    public static let error = "phx_error"
    public static let heartbeat = "heartbeat"
    /// The socket-level topic heartbeats use.
    public static let socketTopic = "phoenix"
    /// A broadcast of this event to a socket id closes every socket with that id.
    public static let disconnect = "disconnect"
}
