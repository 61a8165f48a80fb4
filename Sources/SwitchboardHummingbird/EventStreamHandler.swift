import Logging
import NIOCore
import Switchboard

/// One Server-Sent Events stream, owned by this NIO handler (no task per stream): the transport
/// of a Phoenix session whose topics were joined from the request (`GET /events?topics=a,b`), or
/// of a plain-channel client.
///
/// Phoenix: before the response starts, the session's join replies decide the request: all
/// joined → the stream opens; any refused → the request is answered with 403 and the reason
/// (never a half-open stream). What the channels send before the stream opens is kept and sent
/// first. Pushes and replies come from the session as Phoenix V2 frames and are rewritten here
/// (they are per-connection anyway). Plain: what the handler sends to the client is one JSON value
/// per message, sent as an unnamed event (`onmessage`).
/// Broadcasts arrive pre-encoded in the stream's format (`FrameFormat.serverSentEvents`: encoded
/// once per broadcast). The write-buffer high-water mark is the outbound limit, as for WebSocket.
final class EventStreamHandler: ChannelInboundHandler, PhoenixTransport, @unchecked Sendable {
    // @unchecked: every mutable property is used only on `eventLoop` (NIO calls handler methods
    // there, the session calls the transport methods there, and the request router too).
    typealias InboundIn = NIOAny
    typealias OutboundOut = ByteBuffer

    /// How the joins of the request ended.
    enum JoinOutcome {
        case joined
        case refused(topic: String, reason: String)
    }

    /// What the messages the session sends are: Phoenix V2 frames, or plain JSON texts.
    enum Messages {
        case phoenix
        case plain
    }

    let eventLoop: any EventLoop
    let broadcastFormat: FrameFormat
    private let messages: Messages
    private let keepAlive: TimeAmount
    private let logger: Logger
    private var session: (any WebSocketSessionDelegate)?
    private var context: ChannelHandlerContext?
    /// Written before the stream opened, in order.
    private var pending: [ByteBuffer] = []
    private var joinRefs: [String: String] = [:]
    private var joinedTopics: Set<String> = []
    private var onJoined: ((JoinOutcome) -> Void)?
    private var keepAliveTask: RepeatedTask?
    private var needsFlush = false
    private var closed = false

    init(eventLoop: any EventLoop, messages: Messages = .phoenix, format: FrameFormat = .serverSentEvents, keepAlive: TimeAmount, logger: Logger) {
        self.eventLoop = eventLoop
        self.messages = messages
        self.broadcastFormat = format
        self.keepAlive = keepAlive
        self.logger = logger
    }

    /// A plain-channel client: started once the stream is open.
    func attach(_ session: any WebSocketSessionDelegate) {
        eventLoop.preconditionInEventLoop()
        self.session = session
    }

    /// Starts the attached session (after the stream's head went out).
    func startAttached() {
        guard !closed else { return }
        session?.start()
    }

    /// Joins `topics` (each with `payload`), then calls `done` once with the outcome.
    func join(topics: [String], payload: JSONValue, session: PhoenixSession, done: @escaping (JoinOutcome) -> Void) {
        eventLoop.preconditionInEventLoop()
        self.session = session
        onJoined = done
        session.start()
        for (index, topic) in topics.enumerated() {
            joinRefs[String(index + 1)] = topic
        }
        for (index, topic) in topics.enumerated() {
            let ref = JSONValue.string(String(index + 1))
            session.handle(Message(joinRef: ref, ref: ref, topic: topic, event: PhoenixEvent.join, payload: .json(payload)))
        }
    }

    /// The request was not answered with a stream (refused join, client gone): end the session.
    func abandon() {
        eventLoop.preconditionInEventLoop()
        onJoined = nil
        closed = true
        pending = []
        endSession()
    }

    private func endSession() {
        keepAliveTask?.cancel()
        keepAliveTask = nil
        let session = self.session
        self.session = nil  // the session refers to this handler as its transport: break the cycle
        session?.transportClosed()
    }

    // MARK: ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        guard !closed else { return }
        for buffer in pending {
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
        pending = []
        context.flush()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        keepAliveTask = context.eventLoop.scheduleRepeatedTask(initialDelay: keepAlive, delay: keepAlive) { _ in
            loopBound.value.writeKeepAlive()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closed = true
        endSession()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        endSession()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A stream is one-way: whatever else the client sends is ignored.
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            close(.serviceRestart)
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            // An event-stream client never half-closes: it is gone.
            closed = true
            endSession()
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable && !closed && needsFlush {
            // Unflushed bytes of a burst count too: write them out first (as for WebSocket).
            needsFlush = false
            context.flush()
        }
        if !context.channel.isWritable && !closed {
            logger.debug("closing slow event-stream consumer")
            SwitchboardMetrics.slowConsumerClosed()
            closed = true
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("event stream error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    private func writeKeepAlive() {
        guard let context, !closed else { return }
        context.writeAndFlush(wrapOutboundOut(EventStreamEncoding.comment("keep-alive")), promise: nil)
    }

    // MARK: PhoenixTransport

    func send(_ frame: EncodedFrame) {
        guard !closed, !frame.isBinary else { return }  // binary messages have no SSE form
        if messages == .plain {
            var event = ByteBufferAllocator().buffer(capacity: frame.bytes.readableBytes + 8)
            event.writeStaticString("data: ")
            var text = frame.bytes
            // A text with line breaks is sent as several `data:` lines (the client joins them).
            while let newline = text.readableBytesView.firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) {
                var line = text.readSlice(length: newline - text.readerIndex)!
                text.moveReaderIndex(forwardBy: 1)
                event.writeBuffer(&line)
                event.writeStaticString("\ndata: ")
            }
            event.writeBuffer(&text)
            event.writeStaticString("\n\n")
            return write(event)
        }
        guard case .array(let fields)? = try? JSONParser.parse(frame.bytes), fields.count == 5,
            let topic = fields[2].stringValue, let event = fields[3].stringValue
        else { return }
        switch event {
        case PhoenixEvent.reply:
            guard let ref = fields[1].stringValue, let joining = joinRefs.removeValue(forKey: ref) else { return }
            if fields[4]["status"]?.stringValue == "ok" {
                joinedTopics.insert(joining)
                if joinRefs.isEmpty, let done = onJoined {
                    onJoined = nil
                    // The reply is sent in the same event-loop task that then subscribes the
                    // channel: open the stream after that task, or a client could see the stream
                    // open and publish before it is subscribed.
                    let loopBound = NIOLoopBound(done, eventLoop: eventLoop)
                    eventLoop.execute { loopBound.value(.joined) }
                }
            } else if let done = onJoined {
                onJoined = nil
                let reason = fields[4]["response"]?["reason"]?.stringValue ?? "join refused"
                done(.refused(topic: joining, reason: reason))
            }
        case PhoenixEvent.close, PhoenixEvent.error:
            // The topic's channel ended (left, stopped, crashed); the stream ends with its last topic.
            joinedTopics.remove(topic)
            if joinedTopics.isEmpty && onJoined == nil {
                close(CloseReason(code: 1000, reason: event == PhoenixEvent.error ? "channel crashed" : "channel closed"))
            }
        default:
            write(EventStreamEncoding.event(id: nil, event: event, data: fields[4]))
        }
    }

    func sendPreEncoded(_ frame: ByteBuffer) {
        guard !closed else { return }
        write(frame)
    }

    private func write(_ buffer: ByteBuffer) {
        if let context {
            context.write(wrapOutboundOut(buffer), promise: nil)
            needsFlush = true
        } else {
            pending.append(buffer)
        }
    }

    func flush() {
        guard needsFlush, let context else { return }
        needsFlush = false
        context.flush()
    }

    /// Ends the stream with a last event, `switchboard:close` `{"code", "reason"}` (the codes are
    /// those of WebSocket closes), so a client can tell why. `EventSource` reconnects after it.
    func close(_ reason: CloseReason) {
        guard !closed else { return }
        closed = true
        guard let context else {
            // Still joining: the request is answered with the reason instead of a stream.
            let done = onJoined
            onJoined = nil
            endSession()
            done?(.refused(topic: "", reason: reason.reason))
            return
        }
        logger.debug("closing event stream", metadata: ["code": "\(reason.code)", "reason": "\(reason.reason)"])
        let last = EventStreamEncoding.event(id: nil, event: "switchboard:close", data: ["code": .int(Int64(reason.code)), "reason": .string(reason.reason)])
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(last)).whenComplete { _ in channel.close(promise: nil) }
        endSession()
    }
}
