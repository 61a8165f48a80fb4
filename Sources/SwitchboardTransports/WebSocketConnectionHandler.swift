import Logging
import NIOCore
import NIOWebSocket
import Switchboard

/// The NIO handler that owns one WebSocket connection after the upgrade (Phoenix or plain).
///
/// There is no task per connection: frames are read and written here, on the connection's event
/// loop. Outbound bytes are complete WebSocket frames (the hub frames each broadcast once), written
/// straight to the socket with no frame encoder in between. The channel's write-buffer high
/// water mark is the outbound queue limit: when a client stops reading and the queue passes it,
/// the connection is closed as a slow consumer and its queued bytes are freed.
public final class WebSocketConnectionHandler: ChannelInboundHandler, Transport, @unchecked Sendable {
    // @unchecked: every mutable property is used only on `eventLoop` (NIO calls handler methods
    // there, and the session calls the transport methods there).
    public typealias InboundIn = WebSocketFrame
    public typealias OutboundOut = ByteBuffer

    public let eventLoop: any EventLoop
    public let broadcastFormat: FrameFormat
    private let maxMessageSize: Int
    private let idleTimeout: TimeAmount
    /// Ping the client after this long without reading anything from it (nil: never; Phoenix
    /// clients send heartbeats themselves). A pong is a read, so a client that answers pings is
    /// never idle, even if it sends nothing else (a browser's WebSocket cannot send pings).
    private let pingInterval: TimeAmount?
    private let logger: Logger
    /// When something was last read. The idle timer is this handler's own (not NIO's
    /// IdleStateHandler) so that no extra handler sits on every outbound write. Times are the
    /// event loop's (`eventLoop.now`), so an `EmbeddedEventLoop` can drive them in tests.
    private var lastRead = NIODeadline.now()
    /// When the last ping went out (pings are sent after `pingInterval` of silence, then again
    /// after each further `pingInterval` without an answer).
    private var lastPing = NIODeadline.distantPast
    private var idleCheck: Scheduled<Void>?
    private var makeSession: ((WebSocketConnectionHandler) -> any Session)?
    private var session: (any Session)?
    private var context: ChannelHandlerContext?
    private var fragments: ByteBuffer?
    private var fragmentsBinary = false
    private var needsFlush = false
    private var closing = false

    public init(
        eventLoop: any EventLoop,
        broadcastFormat: FrameFormat,
        maxMessageSize: Int,
        idleTimeout: TimeAmount,
        pingInterval: TimeAmount? = nil,
        logger: Logger,
        makeSession: @escaping (WebSocketConnectionHandler) -> any Session
    ) {
        self.eventLoop = eventLoop
        self.broadcastFormat = broadcastFormat
        self.maxMessageSize = maxMessageSize
        self.idleTimeout = idleTimeout
        // At most half the idle timeout apart, so that a client that answers is never closed.
        self.pingInterval = pingInterval.flatMap { $0 > .zero ? min($0, .nanoseconds(idleTimeout.nanoseconds / 2)) : nil }
        self.logger = logger
        self.makeSession = makeSession
    }

    // MARK: ChannelInboundHandler

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        lastRead = eventLoop.now
        scheduleIdleCheck(context: context, at: nextCheck())
        guard let makeSession else { return }
        self.makeSession = nil  // it captures the channel; not needed after this
        let session = makeSession(self)
        self.session = session
        session.start()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        session?.transportClosed()
        // The session refers to this handler as its transport; letting go of it here breaks the cycle.
        session = nil
        self.context = nil
    }

    public func channelInactive(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        session?.transportClosed()
        session = nil
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastRead = eventLoop.now
        let frame = unwrapInboundIn(data)
        guard !closing else { return }
        switch frame.opcode {
        case .text, .binary:
            if fragments != nil {
                return close(CloseReason(code: 1002, reason: "new message before the previous one ended"))
            }
            if frame.fin {
                deliver(frame.unmaskedData, binary: frame.opcode == .binary)
            } else {
                fragments = frame.unmaskedData
                fragmentsBinary = frame.opcode == .binary
            }
        case .continuation:
            guard var buffer = fragments else {
                return close(CloseReason(code: 1002, reason: "continuation frame without a message"))
            }
            fragments = nil
            var data = frame.unmaskedData
            guard buffer.readableBytes + data.readableBytes <= maxMessageSize else {
                return close(.messageTooBig)
            }
            buffer.writeBuffer(&data)
            if frame.fin {
                deliver(buffer, binary: fragmentsBinary)
            } else {
                fragments = buffer
            }
        case .ping:
            var pong = WebSocketFraming.bodyBuffer(capacity: frame.length)
            var data = frame.unmaskedData
            pong.writeBuffer(&data)
            WebSocketFraming.frame(&pong, opcode: WebSocketFraming.opcodePong)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            // Echo the client's code (or 1000) and close.
            var data = frame.unmaskedData
            let code = data.readInteger(as: UInt16.self) ?? 1000
            // Codes a peer may not send (RFC 6455 §7.4: 1005, 1006, 1015, < 1000, reserved) are answered with 1000.
            let valid = (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code)
            close(CloseReason(code: valid ? code : 1000, reason: ""))
        default:
            break  // pong and reserved opcodes: nothing to do (any read already reset the idle timer)
        }
    }

    private func deliver(_ data: ByteBuffer, binary: Bool) {
        guard data.readableBytes <= maxMessageSize else { return close(.messageTooBig) }
        guard let session else { return }
        let failure = binary ? session.receive(binary: data) : session.receive(text: data)
        if let failure { close(failure) }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? NIOWebSocketError {
            switch error {
            case .invalidFrameLength:
                close(.messageTooBig)
            default:
                close(CloseReason(code: 1002, reason: "protocol error"))
            }
        } else {
            logger.debug("connection error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
        } else if event is ChannelShouldQuiesceEvent {
            close(.serviceRestart)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !closing, OutboundLimit.isExceeded(context: context, flushPending: { self.flush() }, logger: logger) {
            // A close frame could not get past the full queue: the connection just closes.
            closing = true
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    /// When the next ping is due (nil: no pings).
    private var nextPing: NIODeadline? {
        pingInterval.map { max(lastRead, lastPing) + $0 }
    }

    /// The next moment the idle timeout could expire or a ping could be due.
    private func nextCheck() -> NIODeadline {
        let expiry = lastRead + idleTimeout
        guard let ping = nextPing else { return expiry }
        return min(expiry, ping)
    }

    /// Closes the connection once nothing (no frame of any kind, pongs and pings included) was
    /// read for the idle timeout, and pings a silent client first when pings are on; the check
    /// re-arms itself for the moment either could next be due.
    private func scheduleIdleCheck(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(deadline: deadline) {
            let handler = loopBound.value
            guard let context = handler.context, !handler.closing else { return }
            let now = handler.eventLoop.now
            if handler.lastRead + handler.idleTimeout <= now {
                return handler.close(.idleTimeout)
            }
            if let ping = handler.nextPing, ping <= now {
                handler.lastPing = now
                var frame = WebSocketFraming.bodyBuffer(capacity: 0)
                WebSocketFraming.frame(&frame, opcode: WebSocketFraming.opcodePing)
                context.writeAndFlush(handler.wrapOutboundOut(frame), promise: nil)
            }
            handler.scheduleIdleCheck(context: context, at: handler.nextCheck())
        }
    }

    // MARK: Transport

    public func send(_ frame: EncodedFrame) {
        guard let context, !closing else { return }
        var bytes = frame.bytes
        WebSocketFraming.frame(&bytes, opcode: frame.isBinary ? WebSocketFraming.opcodeBinary : WebSocketFraming.opcodeText)
        context.write(wrapOutboundOut(bytes), promise: nil)
        needsFlush = true
    }

    public func sendPreEncoded(_ frame: ByteBuffer) {
        guard let context, !closing else { return }
        context.write(wrapOutboundOut(frame), promise: nil)
        needsFlush = true
    }

    public func flush() {
        guard needsFlush, let context else { return }
        needsFlush = false
        context.flush()
    }

    public func close(_ reason: CloseReason) {
        guard let context, !closing else { return }
        closing = true
        logger.debug("closing connection", metadata: ["code": "\(reason.code)", "reason": "\(reason.reason)"])
        let channel = context.channel
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(WebSocketFraming.closeFrame(code: reason.code, reason: reason.reason)), promise: promise)
        // Close once the close frame is out, or after a grace period if the client does not read.
        let timeout = context.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        promise.futureResult.whenComplete { _ in
            timeout.cancel()
            channel.close(promise: nil)
        }
    }
}
