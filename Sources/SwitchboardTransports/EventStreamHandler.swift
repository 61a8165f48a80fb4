import Logging
import NIOCore
import Switchboard

/// One Server-Sent Events stream, owned by this NIO handler (no task per stream): the transport
/// of a Phoenix session whose topics were joined from the request (`GET /events?topics=a,b`), or
/// of a plain-channel client.
///
/// It is a unidirectional transport: what its session sends is already Server-Sent Events (the
/// session picks `EventStreamSerializer` or `PlainSerializer.eventStream` for it), and broadcasts
/// arrive pre-encoded in the stream's format (`FrameFormat.serverSentEvents`: encoded once per
/// broadcast). What is sent before the stream opens is kept and sent first. The write-buffer
/// high-water mark is the outbound limit, as for WebSocket.
public final class EventStreamHandler: ChannelInboundHandler, Transport, @unchecked Sendable {
    // @unchecked: every mutable property is used only on `eventLoop` (NIO calls handler methods
    // there, the session calls the transport methods there, and so does the endpoint that opens it).
    public typealias InboundIn = NIOAny
    public typealias OutboundOut = ByteBuffer

    public let eventLoop: any EventLoop
    public let broadcastFormat: FrameFormat
    public var isUnidirectional: Bool { true }
    private let keepAlive: TimeAmount
    private let logger: Logger
    private var session: (any Session)?
    private var context: ChannelHandlerContext?
    /// Written before the stream opened, in order.
    private var pending: [ByteBuffer] = []
    /// Told when the session closes the stream before it opened (the request is answered instead).
    private var onCloseBeforeOpen: ((CloseReason) -> Void)?
    private var keepAliveTask: RepeatedTask?
    private var needsFlush = false
    private var closed = false

    public init(eventLoop: any EventLoop, format: FrameFormat = .serverSentEvents, keepAlive: TimeAmount, logger: Logger) {
        self.eventLoop = eventLoop
        self.broadcastFormat = format
        self.keepAlive = keepAlive
        self.logger = logger
    }

    /// The session whose messages this stream carries; `closedBeforeOpen` is told if the session
    /// closes the stream before it opened (a disconnect while its joins are decided).
    public func attach(_ session: any Session, closedBeforeOpen: ((CloseReason) -> Void)? = nil) {
        eventLoop.preconditionInEventLoop()
        self.session = session
        self.onCloseBeforeOpen = closedBeforeOpen
    }

    /// The stream's head went out and it has not been closed.
    public var isOpen: Bool { context != nil && !closed }

    /// The request was not answered with a stream (refused join, client gone): end the session.
    public func abandon() {
        eventLoop.preconditionInEventLoop()
        onCloseBeforeOpen = nil
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

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        onCloseBeforeOpen = nil  // open now: it holds the request's answerer, let it go
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

    public func handlerRemoved(context: ChannelHandlerContext) {
        closed = true
        endSession()
        self.context = nil
    }

    public func channelInactive(context: ChannelHandlerContext) {
        closed = true
        endSession()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A stream is one-way: whatever else the client sends is ignored.
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
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

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !closed, OutboundLimit.isExceeded(context: context, flushPending: { self.flush() }, logger: logger) {
            closed = true
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("event stream error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    private func writeKeepAlive() {
        guard let context, !closed else { return }
        context.writeAndFlush(wrapOutboundOut(EventStreamEncoding.comment("keep-alive")), promise: nil)
    }

    // MARK: Transport

    public func send(_ frame: EncodedFrame) {
        guard !closed, !frame.isBinary else { return }  // binary messages have no SSE form
        write(frame.bytes)
    }

    public func sendPreEncoded(_ frame: ByteBuffer) {
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

    public func flush() {
        guard needsFlush, let context else { return }
        needsFlush = false
        context.flush()
    }

    /// Ends the stream with a last event, `switchboard:close` `{"code", "reason"}` (the codes are
    /// those of WebSocket closes), so a client can tell why. `EventSource` reconnects after it.
    public func close(_ reason: CloseReason) {
        guard !closed else { return }
        closed = true
        guard let context else {
            // Not open yet: the request is answered with the reason instead of a stream.
            let tell = onCloseBeforeOpen
            onCloseBeforeOpen = nil
            endSession()
            tell?(reason)
            return
        }
        logger.debug("closing event stream", metadata: ["code": "\(reason.code)", "reason": "\(reason.reason)"])
        let last = EventStreamEncoding.event(
            id: nil,
            event: "switchboard:close",
            data: ["code": .int(Int64(reason.code)), "reason": .string(reason.reason)]
        )
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(last)).whenComplete { _ in channel.close(promise: nil) }
        endSession()
    }
}
