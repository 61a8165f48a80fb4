import Logging
import NIOCore
import Synchronization

/// One Phoenix socket connection: decodes its messages, routes them to channel servers, and
/// implements the protocol's socket-level rules (heartbeats, joins, leaves, refs, limits).
///
/// All routing state is confined to the connection's event loop; channel callbacks run in the
/// channel servers' own mailbox tasks.
public final class PhoenixSession: Session, @unchecked Sendable {
    // @unchecked: `channels`, `closing` and `isClosed` are read and written only on `eventLoop`
    // (every entry point asserts it or hops there); the rest is immutable.

    public let socket: PhoenixSocket
    public let transport: any Transport
    /// Reads the client's frames (and says which Phoenix version the connection speaks).
    public let serializer: PhoenixSerializer
    /// Writes the session's own messages for the transport: `serializer` itself, or Server-Sent
    /// Events for a unidirectional transport. (Computed: an idle connection stores nothing for it.)
    public var outbound: any SessionSerializer {
        transport.isUnidirectional ? EventStreamSerializer() : serializer
    }
    public let connection: Connection
    let logger: Logger
    var hub: Hub { socket.hub }
    public var eventLoop: any EventLoop { transport.eventLoop }

    private var channels: [String: ChannelServer] = [:]
    /// Servers that left `channels` but have not finished terminating; a new join of the topic waits for them.
    private var closing: [String: ChannelServer] = [:]
    private var isClosed = false
    /// A unidirectional transport's session ends with its last channel, once its joins are done.
    private var endsWithLastChannel = false
    private var socketIDListener: SocketIDListener?
    /// The outcome hooks of joins made by `join(topics:)`, by topic, until each is told.
    private var joinHooks: [String: (String?) -> Void] = [:]

    public init(socket: PhoenixSocket, transport: any Transport, serializer: PhoenixSerializer, connection: Connection, logger: Logger) {
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
            sendNow(outbound.encodeReply(joinRef: .null, ref: message.ref, topic: message.topic, status: "ok", response: .json(.emptyObject)))
            return
        }
        let current = channels[message.topic]
        switch message.event {
        case PhoenixEvent.join:
            join(message, replacing: current)
        case PhoenixEvent.leave:
            guard let current else {
                // Left already, still answering: answered behind that instance's answers.
                if let ending = closing[message.topic] { return closeIfOverloaded(ending.enqueue(.leave(message))) }
                sendNow(
                    outbound.encodeReply(
                        joinRef: message.joinRef,
                        ref: message.ref,
                        topic: message.topic,
                        status: "ok",
                        response: .json(.emptyObject)
                    )
                )
                return
            }
            guard isCurrent(message, current) else { return }  // a stale leave gets no reply
            channels[message.topic] = nil
            closing[message.topic] = current
            closeIfOverloaded(current.enqueue(.leave(message)))
        default:
            guard let current else {
                if let ending = closing[message.topic] { return closeIfOverloaded(ending.enqueue(.handleIn(message))) }
                return replyUnmatchedTopic(message)
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

    /// No channel serves the message's topic (a join no route matches, or an event for a topic
    /// that was never joined): an error reply, as Phoenix gives.
    private func replyUnmatchedTopic(_ message: Message) {
        sendNow(
            outbound.encodeReply(
                joinRef: .null,
                ref: message.ref,
                topic: message.topic,
                status: "error",
                response: .json(["reason": "unmatched topic"])
            )
        )
    }

    private func isCurrent(_ message: Message, _ server: ChannelServer) -> Bool {
        message.joinRef.isNull || message.joinRef == server.joinRef
    }

    /// Joins a topic for a `phx_join` (or for `join(topics:)`); `joined` learns the outcome on
    /// the event loop: nil once the channel joined and subscribed, else the refusal's reason.
    private func join(_ message: Message, replacing current: ChannelServer?, joined: ((String?) -> Void)? = nil) {
        guard let channel = socket.route(message.topic) else {
            replyUnmatchedTopic(message)
            joined?("unmatched topic")
            return
        }
        if current == nil, channels.count >= socket.configuration.maxChannels {
            sendNow(
                outbound.encodeReply(
                    joinRef: message.joinRef,
                    ref: message.ref,
                    topic: message.topic,
                    status: "error",
                    response: .json(["reason": "too many channels joined"])
                )
            )
            joined?("too many channels joined")
            return
        }
        if let current {
            // A second join of the same topic replaces the first: the old instance terminates (and
            // its client gets phx_close for the old join ref) before the new join runs. V1 clients
            // cannot tell which instance a phx_close belongs to, so they are not sent one.
            current.enqueue(.terminate(.replaced, sendClose: serializer == .v2))
        }
        if let joined { joinHooks[message.topic] = joined }
        let server = ChannelServer(session: self, join: message, channel: channel, predecessor: current ?? closing[message.topic])
        closing[message.topic] = nil
        channels[message.topic] = server
        server.enqueue(.join(message))
    }

    /// How joining the topics of a connect request ended.
    public enum JoinOutcome: Sendable, Equatable {
        /// Every channel joined and is subscribed.
        case joined
        /// The first topic that was not joined, and why (the join's error reason).
        case refused(topic: String, reason: String)
    }

    /// Joins `topics` as the connect request asked (for a transport without client frames, such
    /// as Server-Sent Events), each with `payload` as its join payload, as `phx_join`s would.
    /// `completion` runs once, on the event loop: `.joined` when every channel has joined and
    /// subscribed (so a broadcast made after it reaches them), or `.refused` with the first
    /// topic that was not. From then on a unidirectional transport's session ends with its last
    /// channel. Call once, after `start()`, on the event loop.
    public func join(topics: [String], payload: JSONValue, completion: @escaping (JoinOutcome) -> Void) {
        eventLoop.preconditionInEventLoop()
        var remaining = topics.count
        var completion: ((JoinOutcome) -> Void)? = completion
        for (index, topic) in topics.enumerated() where !isClosed {
            let ref = JSONValue.string(String(index + 1))
            let message = Message(joinRef: ref, ref: ref, topic: topic, event: PhoenixEvent.join, payload: .json(payload))
            join(message, replacing: channels[topic]) { [self] refusal in
                guard let done = completion else { return }
                if let refusal {
                    completion = nil
                    return done(.refused(topic: topic, reason: refusal))
                }
                remaining -= 1
                if remaining == 0 {
                    completion = nil
                    endsWithLastChannel = transport.isUnidirectional
                    done(.joined)
                }
            }
        }
    }

    /// A channel's join ended (nil: joined and subscribed; else the refusal's reason): tells the
    /// hook of a join `join(topics:)` made. Called on the event loop.
    func joinEnded(_ server: ChannelServer, refusal: String?) {
        eventLoop.preconditionInEventLoop()
        guard !joinHooks.isEmpty, channels[server.topic] === server, let hook = joinHooks.removeValue(forKey: server.topic) else { return }
        if joinHooks.isEmpty { joinHooks = [:] }  // give the table's storage back: it is not needed again
        hook(refusal)
    }

    /// A channel server ended (refused, left, stopped, crashed, replaced): forget it if it is
    /// still current. A unidirectional transport's session ends with its last channel.
    func channelEnded(_ server: ChannelServer, crashed: Bool = false) {
        guard eventLoop.inEventLoop else {
            return eventLoop.execute { self.channelEnded(server, crashed: crashed) }
        }
        // Messages for the topic keep going to the ended channel (which answers them in order
        // behind its earlier answers) until every answer it owes is written.
        if server.holdEnd(crashed: crashed) { return }
        if channels[server.topic] === server { channels[server.topic] = nil }
        if closing[server.topic] === server { closing[server.topic] = nil }
        if endsWithLastChannel, !isClosed, channels.isEmpty, closing.isEmpty {
            transport.close(CloseReason(code: 1000, reason: crashed ? "channel crashed" : "channel closed"))
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
