/// What channel callbacks see of their (connection, topic) pair, and how they talk back.
public struct ChannelSocket: Sendable {
    /// The joined topic (e.g. `room:lobby`).
    public let topic: String
    /// The join ref the client sent with its `phx_join` (may be null).
    public let joinRef: JSONValue
    /// Per-channel values; starts as a copy of the connection's assigns. Changes persist across callbacks.
    public var assigns: Assigns
    /// The connection this channel runs on.
    public let connection: Connection
    /// The hub, to broadcast to any topic.
    public let hub: Hub
    let server: ChannelServer

    /// The connection's socket id, if it was given one at connect.
    public var socketID: String? { connection.socketID }

    /// Sends an event to this client only.
    public func push(_ event: String, _ payload: Payload) {
        server.push(event: event, payload: payload)
    }

    /// Sends an event with a JSON payload to this client only.
    public func push(_ event: String, _ payload: JSONValue) {
        push(event, .json(payload))
    }

    /// Broadcasts to every subscriber of this topic, this client included, on every node.
    public func broadcast(_ event: String, _ payload: Payload) {
        hub.broadcast(topic: topic, event: event, payload: payload)
    }

    /// Broadcasts a JSON payload to every subscriber of this topic, this client included.
    public func broadcast(_ event: String, _ payload: JSONValue) {
        broadcast(event, .json(payload))
    }

    /// Broadcasts to every subscriber of this topic except this channel (Phoenix's `broadcast_from`).
    public func broadcastFrom(_ event: String, _ payload: Payload) {
        hub.publish(Broadcast(topic: topic, event: event, payload: payload, excluding: server.id))
    }

    /// Broadcasts a JSON payload to every subscriber of this topic except this channel.
    public func broadcastFrom(_ event: String, _ payload: JSONValue) {
        broadcastFrom(event, .json(payload))
    }

    /// Puts this channel into a room (any hub topic). Broadcasts to the room reach this client as
    /// pushes on this channel's topic, until it leaves the room or the channel ends.
    public func joinRoom(_ room: String) {
        server.joinRoom(room)
    }

    /// Takes this channel out of a room.
    public func leaveRoom(_ room: String) {
        server.leaveRoom(room)
    }

    /// The rooms this channel is in.
    public var rooms: Set<String> { server.roomNames }
}
