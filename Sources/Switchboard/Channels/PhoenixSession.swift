import Logging
import NIOCore
import Synchronization

/// The transport side of a Phoenix session: a WebSocket, or a long-poll session.
/// Every method is called on `eventLoop`.
public protocol PhoenixTransport: AnyObject, Sendable {
    var eventLoop: any EventLoop { get }
    /// The form in which the hub should pre-encode broadcasts for this transport.
    var broadcastFormat: FrameFormat { get }
    /// Queues one encoded message (not yet flushed).
    func send(_ frame: EncodedFrame)
    /// Queues a broadcast frame the hub encoded in `broadcastFormat` (not yet flushed).
    func sendPreEncoded(_ frame: ByteBuffer)
    /// Writes out what is queued.
    func flush()
    /// Closes the connection (the session has already been told, or will be by `transportClosed`).
    func close(_ reason: CloseReason)
}

/// One Phoenix socket connection: decodes its messages, routes them to channel servers, and
/// implements the protocol's socket-level rules (heartbeats, joins, leaves, refs, limits).
///
/// All routing state is confined to the connection's event loop; channel callbacks run in the
/// channel servers' own mailbox tasks.
public final class PhoenixSession: @unchecked Sendable {
    // @unchecked: `channels`, `closing` and `isClosed` are read and written only on `eventLoop`
    // (every entry point asserts it or hops there); the rest is immutable.

    public let socket: PhoenixSocket
    public let transport: any PhoenixTransport
    public let serializer: PhoenixSerializer
    public let connection: Connection
    let logger: Logger
    var hub: Hub { socket.hub }
    public var eventLoop: any EventLoop { transport.eventLoop }

    private var channels: [String: ChannelServer] = [:]
    /// Servers that left `channels` but have not finished terminating; a new join of the topic waits for them.
    private var closing: [String: ChannelServer] = [:]
    private var isClosed = false
    private var socketIDListener: SocketIDListener?

    public init(socket: PhoenixSocket, transport: any PhoenixTransport, serializer: PhoenixSerializer, connection: Connection, logger: Logger) {
        self.socket = socket
        self.transport = transport
        self.serializer = serializer
        self.connection = connection
        self.logger = logger
        Self.live.add(1, ordering: .relaxed)
    }

    deinit {
        Self.live.subtract(1, ordering: .relaxed)
    }

    /// Sessions alive in this process (leak checks, metrics).
    public static let live = Atomic<Int>(0)

    /// Starts listening on the socket id topic (for `disconnect(socketID:)`). Call once, on the event loop.
    public func start() {
        if let socketID = connection.socketID {
            let listener = SocketIDListener(connection: connection, eventLoop: eventLoop, node: hub.nodeID)
            socketIDListener = listener
            hub.subscribe(listener, to: socketID)
        }
    }

    /// Number of joined (or joining) channels.
    public var channelCount: Int {
        eventLoop.preconditionInEventLoop()
        return channels.count
    }

    // MARK: Inbound

    /// Handles a text frame. Returns a close reason when the frame is invalid enough to end the connection.
    public func receive(text: ByteBuffer) -> CloseReason? {
        eventLoop.preconditionInEventLoop()
        SwitchboardMetrics.messageReceived()
        do {
            let message = try serializer.decode(text: text)
            handle(message)
            return nil
        } catch {
            return closeReason(for: error)
        }
    }

    /// Handles a binary frame. Returns a close reason when the frame cannot be read.
    public func receive(binary: ByteBuffer) -> CloseReason? {
        eventLoop.preconditionInEventLoop()
        SwitchboardMetrics.messageReceived()
        do {
            let message = try serializer.decode(binary: binary)
            handle(message)
            return nil
        } catch {
            return closeReason(for: error)
        }
    }

    private func closeReason(for error: PhoenixDecodeError) -> CloseReason {
        switch error {
        case .invalidMessage(let detail):
            logger.debug("invalid message", metadata: ["reason": "\(detail)"])
            return .invalidMessage(detail)
        case .unsupportedBinary(let detail):
            logger.debug("unsupported binary frame", metadata: ["reason": "\(detail)"])
            return .unsupportedBinary(detail)
        }
    }

    /// Routes one decoded message (the decision table of the protocol, §8.1).
    public func handle(_ message: Message) {
        eventLoop.preconditionInEventLoop()
        guard !isClosed else { return }
        if message.topic == PhoenixEvent.socketTopic && message.event == PhoenixEvent.heartbeat {
            sendNow(serializer.encodeReply(joinRef: .null, ref: message.ref, topic: message.topic, status: "ok", response: .json(.emptyObject)))
            return
        }
        let current = channels[message.topic]
        switch message.event {
        case PhoenixEvent.join:
            join(message, replacing: current)
        case PhoenixEvent.leave:
            guard let current else {
                sendNow(serializer.encodeReply(joinRef: message.joinRef, ref: message.ref, topic: message.topic, status: "ok", response: .json(.emptyObject)))
                return
            }
            guard isCurrent(message, current) else { return }  // a stale leave gets no reply
            channels[message.topic] = nil
            closing[message.topic] = current
            closeIfOverloaded(current.enqueue(.leave(message)))
        default:
            guard let current else {
                sendNow(serializer.encodeReply(joinRef: .null, ref: message.ref, topic: message.topic, status: "error", response: .json(["reason": "unmatched topic"])))
                return
            }
            guard isCurrent(message, current) else { return }  // stale instance: dropped silently
            closeIfOverloaded(current.enqueue(.handleIn(message)))
        }
    }

    /// Ends a connection that sends events faster than its channel handles them.
    private func closeIfOverloaded(_ depth: Int) {
        guard depth > socket.configuration.maxPendingMessages else { return }
        SwitchboardMetrics.slowConsumerClosed()
        logger.debug("closing: too many pending messages")
        transport.close(CloseReason(code: 1008, reason: "too many pending messages"))
    }

    private func isCurrent(_ message: Message, _ server: ChannelServer) -> Bool {
        message.joinRef.isNull || message.joinRef == server.joinRef
    }

    private func join(_ message: Message, replacing current: ChannelServer?) {
        guard let channel = socket.route(message.topic) else {
            sendNow(serializer.encodeReply(joinRef: .null, ref: message.ref, topic: message.topic, status: "error", response: .json(["reason": "unmatched topic"])))
            return
        }
        if current == nil, channels.count >= socket.configuration.maxChannels {
            sendNow(serializer.encodeReply(joinRef: message.joinRef, ref: message.ref, topic: message.topic, status: "error", response: .json(["reason": "too many channels joined"])))
            return
        }
        if let current {
            // A second join of the same topic replaces the first: the old instance terminates (and
            // its client gets phx_close for the old join ref) before the new join runs. V1 clients
            // cannot tell which instance a phx_close belongs to, so they are not sent one.
            current.enqueue(.terminate(.replaced, sendClose: serializer == .v2))
        }
        let server = ChannelServer(session: self, join: message, channel: channel, predecessor: current ?? closing[message.topic])
        closing[message.topic] = nil
        channels[message.topic] = server
        server.enqueue(.join(message))
    }

    /// A channel server ended (refused, left, stopped, crashed, replaced): forget it if it is still current.
    func channelEnded(_ server: ChannelServer) {
        if eventLoop.inEventLoop {
            if channels[server.topic] === server { channels[server.topic] = nil }
            if closing[server.topic] === server { closing[server.topic] = nil }
        } else {
            eventLoop.execute { self.channelEnded(server) }
        }
    }

    // MARK: Outbound

    /// Sends a frame from any thread: hops to the event loop, writes and flushes.
    func send(_ frame: EncodedFrame?) {
        guard let frame else { return }
        if eventLoop.inEventLoop {
            sendNow(frame)
        } else {
            eventLoop.execute { self.sendNow(frame) }
        }
    }

    /// Sends a frame behind every task already queued on the event loop (even from the loop).
    func sendQueued(_ frame: EncodedFrame?) {
        guard let frame else { return }
        eventLoop.execute { self.sendNow(frame) }
    }

    private func sendNow(_ frame: EncodedFrame?) {
        guard let frame, !isClosed else { return }
        SwitchboardMetrics.messageSent()
        transport.send(frame)
        transport.flush()
    }

    // MARK: Closing

    /// The transport is gone: every channel terminates (nothing more is sent), and the connection
    /// leaves every topic and room. Call once, on the event loop.
    public func transportClosed() {
        eventLoop.preconditionInEventLoop()
        guard !isClosed else { return }
        isClosed = true
        if let socketID = connection.socketID, let listener = socketIDListener {
            hub.unsubscribe(listener, from: socketID)
        }
        let servers = channels.values
        channels = [:]
        for server in servers {
            server.enqueue(.terminate(.closed, sendClose: false))
        }
    }
}

/// Listens on a connection's socket-id topic and closes the connection on `disconnect`.
final class SocketIDListener: Subscriber {
    let id: SubscriberID
    let connection: Connection
    let eventLoop: any EventLoop

    init(connection: Connection, eventLoop: any EventLoop, node: String) {
        self.id = SubscriberID.next(node: node)
        self.connection = connection
        self.eventLoop = eventLoop
    }

    var frameFormat: FrameFormat? { nil }

    func receive(_ broadcast: Broadcast, frame: ByteBuffer?) {
        if broadcast.event == PhoenixEvent.disconnect {
            connection.close(.disconnected)
        }
    }

    func flushBatch() {}
}
