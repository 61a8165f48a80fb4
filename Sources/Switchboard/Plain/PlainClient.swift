import NIOCore

/// One connected client of a plain channel.
public final class PlainClient<ClientContext: Sendable>: Sendable {
    /// What `connect` returned for this client.
    public let context: ClientContext
    /// The upgrade request.
    public let request: ConnectRequest
    /// The channel the client is on.
    public let channel: PlainChannel
    let core: PlainClientCore

    init(context: ClientContext, request: ConnectRequest, channel: PlainChannel, core: PlainClientCore) {
        self.context = context
        self.request = request
        self.channel = channel
        self.core = core
    }

    /// The connection (for listing and closing).
    public var connection: Connection { core.connection }

    /// Sends a JSON value to this client.
    public func send(json: JSONValue) {
        var body = WebSocketFraming.bodyBuffer(capacity: 128)
        JSONWriter.write(json, into: &body)
        core.send(text: body)
    }

    /// Sends any `Encodable` value as JSON to this client.
    public func send(_ value: some Encodable) throws {
        send(json: try JSONValue(encoding: value))
    }

    /// Sends a text frame.
    public func send(text: String) {
        core.send(text: ByteBuffer(string: text))
    }

    /// Sends a binary frame.
    public func send(binary: ByteBuffer) {
        core.send(binary: binary)
    }

    /// Closes the connection with a code and reason.
    public func close(code: UInt16 = 1000, reason: String = "") {
        core.connection.close(CloseReason(code: code, reason: reason))
    }

    /// Puts the client into a room of its channel (created on first use).
    public func join(room: String) {
        core.subscribe(to: channel.topic(room: room))
    }

    /// Takes the client out of a room.
    public func leave(room: String) {
        core.unsubscribe(from: channel.topic(room: room))
    }

    /// Subscribes the client to any hub topic (e.g. a Phoenix topic), outside the channel's rooms.
    public func subscribe(topic: String) {
        core.subscribe(to: topic)
    }

    /// Subscribes the client to a topic with history, resuming after `since`: the messages it
    /// missed come first (as live ones would have), then live ones, none lost or doubled at the
    /// seam. Returns what the hub could do (`.notRecovered`: only live messages follow; nil: the
    /// topic keeps no history, and the client is subscribed as by `subscribe(topic:)`).
    @discardableResult
    public func subscribe(topic: String, since: StreamPosition) async -> Recovery? {
        await core.subscribe(to: topic, since: since)
    }

    /// Sends a JSON value to everyone in a room, this client included or not.
    public func broadcast(json: JSONValue, toRoom room: String, includingSelf: Bool = true, event: String = PlainChannel.messageEvent) {
        channel.hub.publish(Broadcast(topic: channel.topic(room: room), event: event, payload: .json(json), excluding: includingSelf ? nil : core.id))
    }

    /// Sends a JSON value to every client of the channel, this client included or not.
    public func broadcast(json: JSONValue, includingSelf: Bool = true, event: String = PlainChannel.messageEvent) {
        channel.hub.publish(Broadcast(topic: channel.topic, event: event, payload: .json(json), excluding: includingSelf ? nil : core.id))
    }
}
