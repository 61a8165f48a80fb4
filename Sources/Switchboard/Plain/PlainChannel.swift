import NIOCore

/// A plain WebSocket channel: JSON (or any bytes) over a WebSocket at a URL path, no envelope.
///
/// A channel has a name and lives entirely in the hub, so any code holding the hub can reach it:
/// `hub.plainChannel("main").broadcast(json: …)`. Its clients are subscribed to the hub topic
/// `name`; its rooms are the hub topics `name:room`. A plain chat channel named `room` therefore
/// shares its rooms with Phoenix topics `room:<room>`.
public struct PlainChannel: Sendable {
    public let name: String
    public let hub: Hub
    /// The event name plain broadcasts carry (Phoenix subscribers of the same topic see it).
    public static let messageEvent = "message"

    public init(name: String, hub: Hub) {
        self.name = name
        self.hub = hub
    }

    /// The hub topic every client of the channel is subscribed to.
    public var topic: String { name }

    /// The hub topic of a room.
    public func topic(room: String) -> String { "\(name):\(room)" }

    /// Sends a JSON value to every client of the channel (on every node).
    public func broadcast(json: JSONValue, event: String = PlainChannel.messageEvent) {
        hub.broadcast(topic: topic, event: event, payload: .json(json))
    }

    /// Sends any `Encodable` value, as JSON, to every client of the channel.
    public func broadcast(_ value: some Encodable, event: String = PlainChannel.messageEvent) throws {
        broadcast(json: try JSONValue(encoding: value), event: event)
    }

    /// Sends a JSON value to every client in a room.
    public func broadcast(json: JSONValue, toRoom room: String, event: String = PlainChannel.messageEvent) {
        hub.broadcast(topic: topic(room: room), event: event, payload: .json(json))
    }

    /// Sends any `Encodable` value to every client in a room.
    public func broadcast(_ value: some Encodable, toRoom room: String, event: String = PlainChannel.messageEvent) throws {
        broadcast(json: try JSONValue(encoding: value), toRoom: room, event: event)
    }

    /// Sends a JSON value to the clients of the channel on this node whose context (what `connect`
    /// returned) passes `filter`. Encoded once; the filter runs per client; other nodes' clients
    /// are not reached (a closure cannot travel to them).
    public func broadcast<ClientContext: Sendable>(
        json: JSONValue,
        event: String = PlainChannel.messageEvent,
        where filter: @escaping @Sendable (ClientContext) -> Bool
    ) {
        hub.broadcast(topic: topic, event: event, payload: json) { connection in
            (connection.assigns[Self.contextKey] as ClientContext?).map(filter) ?? false
        }
    }

    /// Where a client's context is kept in its connection's assigns.
    static let contextKey = "switchboard.plain.context"

    /// The assigns of a client's `Connection`: they hold its context, for filtered broadcasts.
    public static func assigns(for context: some Sendable) -> Assigns {
        var assigns = Assigns()
        assigns[contextKey] = context
        return assigns
    }

    /// The connections in a room on this node.
    public func connections(inRoom room: String) -> [Connection] {
        hub.localConnections(topic: topic(room: room))
    }

    /// How many clients the channel has on this node.
    public var localClientCount: Int { hub.localSubscriberCount(topic: topic) }
}

extension Hub {
    /// The plain channel with this name.
    public func plainChannel(_ name: String) -> PlainChannel { PlainChannel(name: name, hub: self) }
}
