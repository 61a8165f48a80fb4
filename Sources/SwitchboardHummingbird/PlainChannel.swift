import Foundation
import Logging
import NIOCore
import Switchboard
import Synchronization

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
    public func broadcast<ClientContext: Sendable>(json: JSONValue, event: String = PlainChannel.messageEvent, where filter: @escaping @Sendable (ClientContext) -> Bool) {
        hub.broadcast(topic: topic, event: event, payload: json) { connection in
            (connection.assigns[Self.contextKey] as ClientContext?).map(filter) ?? false
        }
    }

    /// Where a client's context is kept in its connection's assigns.
    static let contextKey = "switchboard.plain.context"

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

/// What a plain channel's `connect` sees of the upgrade request.
public struct PlainConnectRequest: Sendable {
    /// The request path.
    public var path: String
    /// URL variables from the route (`/ws/{token}` ⇒ `parameters["token"]`).
    public var parameters: [String: String]
    /// Query parameters (the last value wins when a name repeats).
    public var query: [String: String]
    /// Request headers (names lower-cased).
    public var headers: [(name: String, value: String)]
    /// The peer's address.
    public var peerAddress: String?

    /// The first header with this name (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }
}

/// The decision taken before the upgrade.
public enum PlainConnectResult<ClientContext: Sendable>: Sendable {
    /// Upgrade; `context` stays with the client until it disconnects.
    case accept(ClientContext)
    /// Answer the upgrade request with this HTTP status and `{"error": reason}`; no socket is opened.
    case refuse(status: Int = 403, reason: String)
}

/// The code behind a plain channel. Callbacks for one client run one at a time, in order.
public protocol PlainChannelHandler: Sendable {
    associatedtype ClientContext: Sendable

    /// Accepts (with a per-client context, e.g. the user resolved from a URL variable) or refuses.
    func connect(_ request: PlainConnectRequest, channel: PlainChannel) async throws -> PlainConnectResult<ClientContext>
    /// The socket is open: join rooms, greet, announce.
    func connected(_ client: PlainClient<ClientContext>) async throws
    /// A message from the client. A thrown `PlainMessageError` is answered to this client as
    /// `{"error": {"code", "message"}}` and the connection stays open; other errors likewise with
    /// code `handler_error`.
    func message(_ message: PlainMessage, from client: PlainClient<ClientContext>) async throws
    /// The socket closed; the client has already left every room.
    func disconnected(_ client: PlainClient<ClientContext>) async
}

extension PlainChannelHandler {
    public func connected(_ client: PlainClient<ClientContext>) async throws {}
    public func message(_ message: PlainMessage, from client: PlainClient<ClientContext>) async throws {}
    public func disconnected(_ client: PlainClient<ClientContext>) async {}
}

/// A message that could not be understood; answered to the client with its code and message.
public struct PlainMessageError: Error, Sendable {
    public var code: String
    public var message: String
    public init(code: String = "invalid_message", _ message: String) {
        self.code = code
        self.message = message
    }
}

/// One message from a plain client.
public struct PlainMessage: Sendable {
    /// The message bytes.
    public let data: ByteBuffer
    /// Whether it came in a binary frame.
    public let isBinary: Bool

    /// The text, for a text message.
    public var text: String? { isBinary ? nil : String(buffer: data) }

    /// The message parsed as JSON.
    public func json() throws -> JSONValue {
        do {
            return try JSONParser.parse(data)
        } catch {
            throw PlainMessageError("message is not valid JSON: \(error)")
        }
    }

    /// One member of a JSON object message, or nil (also when the message is not a JSON object).
    public subscript(key: String) -> JSONValue? { (try? json())?[key] }

    /// The message decoded into a `Decodable` type.
    public func decode<T: Decodable>(as type: T.Type = T.self) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(data.readableBytesView))
        } catch {
            throw PlainMessageError("message does not decode as \(T.self): \(error)")
        }
    }
}

/// One connected client of a plain channel.
public final class PlainClient<ClientContext: Sendable>: Sendable {
    /// What `connect` returned for this client.
    public let context: ClientContext
    /// The upgrade request.
    public let request: PlainConnectRequest
    /// The channel the client is on.
    public let channel: PlainChannel
    let core: PlainClientCore

    init(context: ClientContext, request: PlainConnectRequest, channel: PlainChannel, core: PlainClientCore) {
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
        core.send(EncodedFrame(bytes: body, isBinary: false))
    }

    /// Sends any `Encodable` value as JSON to this client.
    public func send(_ value: some Encodable) throws {
        send(json: try JSONValue(encoding: value))
    }

    /// Sends a text frame.
    public func send(text: String) {
        core.send(EncodedFrame(bytes: ByteBuffer(string: text), isBinary: false))
    }

    /// Sends a binary frame.
    public func send(binary: ByteBuffer) {
        core.send(EncodedFrame(bytes: binary, isBinary: true))
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

    /// Sends a JSON value to everyone in a room, this client included or not.
    public func broadcast(json: JSONValue, toRoom room: String, includingSelf: Bool = true, event: String = PlainChannel.messageEvent) {
        channel.hub.publish(Broadcast(topic: channel.topic(room: room), event: event, payload: .json(json), excluding: includingSelf ? nil : core.id))
    }

    /// Sends a JSON value to every client of the channel, this client included or not.
    public func broadcast(json: JSONValue, includingSelf: Bool = true, event: String = PlainChannel.messageEvent) {
        channel.hub.publish(Broadcast(topic: channel.topic, event: event, payload: .json(json), excluding: includingSelf ? nil : core.id))
    }
}

/// The non-generic part of a plain client: its transport, subscriptions and mailbox.
final class PlainClientCore: WebSocketSessionDelegate, @unchecked Sendable {
    // @unchecked: the callback closures are set once, before the connection starts, read after,
    // and cleared by the last mailbox item once the connection is closed (no receive can follow);
    // subscriptions are behind a lock; the rest is immutable or Sendable.
    let id: SubscriberID
    let hub: Hub
    let transport: any PhoenixTransport
    let connection: Connection
    let format: FrameFormat
    let mailbox = SerialMailbox()
    let logger: Logger
    private struct Subscriptions {
        var byTopic: [String: PlainSubscriber] = [:]
        var closed = false
    }
    private let subscriptions = Mutex(Subscriptions())
    /// Set once by the generic client factory: the handler callbacks, type-erased.
    var onStart: (@Sendable () async -> Void)?
    var onMessage: (@Sendable (PlainMessage) async -> Void)?
    var onClose: (@Sendable () async -> Void)?

    let maxPendingMessages: Int

    init(hub: Hub, transport: any PhoenixTransport, connection: Connection, format: FrameFormat, maxPendingMessages: Int, logger: Logger) {
        self.maxPendingMessages = maxPendingMessages
        self.id = SubscriberID.next(node: hub.nodeID)
        self.hub = hub
        self.transport = transport
        self.connection = connection
        self.format = format
        self.logger = logger
        Self.live.add(1, ordering: .relaxed)
    }

    deinit {
        Self.live.subtract(1, ordering: .relaxed)
    }

    /// Plain clients alive in this process (leak checks, metrics).
    static let live = Atomic<Int>(0)

    var eventLoop: any EventLoop { transport.eventLoop }

    func send(_ frame: EncodedFrame) {
        SwitchboardMetrics.messageSent()
        if eventLoop.inEventLoop {
            transport.send(frame)
            transport.flush()
        } else {
            eventLoop.execute {
                self.transport.send(frame)
                self.transport.flush()
            }
        }
    }

    /// Subscribes at once (from any thread), so a broadcast made right after reaches this client.
    func subscribe(to topic: String) {
        subscriptions.withLock { s in
            guard !s.closed, s.byTopic[topic] == nil else { return }
            let subscriber = PlainSubscriber(core: self)
            s.byTopic[topic] = subscriber
            hub.subscribe(subscriber, to: topic)
        }
    }

    func unsubscribe(from topic: String) {
        subscriptions.withLock { s in
            guard let subscriber = s.byTopic.removeValue(forKey: topic) else { return }
            hub.unsubscribe(subscriber, from: topic)
        }
    }

    // MARK: WebSocketSessionDelegate

    func start() {
        if let onStart { mailbox.enqueue(onStart) }
    }

    func receive(text: ByteBuffer) -> CloseReason? {
        deliver(PlainMessage(data: text, isBinary: false))
    }

    func receive(binary: ByteBuffer) -> CloseReason? {
        deliver(PlainMessage(data: binary, isBinary: true))
    }

    private func deliver(_ message: PlainMessage) -> CloseReason? {
        SwitchboardMetrics.messageReceived()
        guard let onMessage else { return nil }
        let depth = mailbox.enqueue { await onMessage(message) }
        return depth > maxPendingMessages ? CloseReason(code: 1008, reason: "too many pending messages") : nil
    }

    func transportClosed() {
        let wasOpen = subscriptions.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.closed = true
            for (topic, subscriber) in s.byTopic { hub.unsubscribe(subscriber, from: topic) }
            s.byTopic = [:]
            return true
        }
        guard wasOpen else { return }
        mailbox.enqueue {
            await self.onClose?()
            // The callbacks hold the client, which holds this core: release them to end the cycle.
            self.onStart = nil
            self.onMessage = nil
            self.onClose = nil
        }
    }
}

/// A plain client's subscription to one topic: writes the pre-encoded frame to the socket.
final class PlainSubscriber: Subscriber {
    let core: PlainClientCore
    init(core: PlainClientCore) { self.core = core }
    var id: SubscriberID { core.id }
    var eventLoop: any EventLoop { core.eventLoop }
    var frameFormat: FrameFormat? { core.format }
    var connection: Connection { core.connection }
    func receive(_ broadcast: Broadcast, frame: ByteBuffer?) {
        if let frame { core.transport.sendPreEncoded(frame) }
    }
    func flushBatch() { core.transport.flush() }
}
