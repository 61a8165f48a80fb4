import Logging
import NIOCore
import NIOHTTP1
import Switchboard

/// Sits in every HTTP connection's pipeline behind NIO's `HTTPServerPipelineHandler` and in
/// front of the upgrade handler and Hummingbird, and answers the requests of its endpoints
/// (`InterceptedEndpoint`: SSE streams, long-poll, the on-loop publish, WebSocket upgrades of a
/// kept-alive connection) on the connection's event loop. Everything else passes through.
///
/// What it guarantees:
/// - Requests are answered one at a time and in order: NIO's pipeline handler delivers the next
///   request only once the previous answer's `.end` (ours or Hummingbird's) is written.
/// - An idle connection gets a request-head timeout (`HTTPConnectionLimits.requestHeadTimeout`):
///   an incomplete head is answered 408 with a reason, a silent connection is closed.
/// - A request NIO cannot parse is answered 400 `{"error": "malformed HTTP request"}` and the
///   connection closed.
/// - At shutdown an idle connection closes at once, a busy one after its answer (within
///   `shutdownGracePeriod`); an endpoint's parked answer is given at once; nothing new starts (503).
/// - A stream or upgrade that takes the connection over removes NIO's HTTP handlers (and this
///   one) before writing anything that is not HTTP.
///
/// The decisions are `StateMachine`'s; this handler performs them.
package final class HTTPInterceptor: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked: all state is used only on the channel's event loop (handler callbacks, and
    // futures hopped there before they touch it).
    package typealias InboundIn = HTTPServerRequestPart
    package typealias InboundOut = HTTPServerRequestPart
    package typealias OutboundIn = HTTPServerResponsePart
    package typealias OutboundOut = HTTPServerResponsePart

    /// What the interceptor serves and the limits it keeps.
    package struct Configuration: Sendable {
        /// Tried in order; the first that matches takes the request.
        package var endpoints: [any InterceptedEndpoint] = []
        package var limits = HTTPConnectionLimits()
        /// The connection's upgrade handler while it is in the pipeline (only the first request of
        /// a connection can upgrade through it; a stream that takes over removes it).
        package var upgradeHandler: @Sendable (ChannelPipeline.SynchronousOperations) -> (any RemovableChannelHandler)? = { _ in nil }

        package init(endpoints: [any InterceptedEndpoint] = [], limits: HTTPConnectionLimits = HTTPConnectionLimits()) {
            self.endpoints = endpoints
            self.limits = limits
        }
    }

    package let configuration: Configuration
    package let logger: Logger
    /// Called when a stream takes the connection over (the connection's first request has not
    /// reached the HTTP server, so it must not wait for one).
    private let tookOver: () -> Void
    private var machine = StateMachine()
    package private(set) var context: ChannelHandlerContext?
    /// The request being answered asked for `connection: close` (or is HTTP/1.0 without keep-alive).
    private var keepAlive = true
    /// Undo for whatever our answer in progress waits on (a pending SSE join, a parked poll).
    package var onInactive: (() -> Void)? {
        didSet { if onInactive == nil { onQuiesce = nil } }
    }
    /// What to do with our answer in progress when the server shuts down (a parked poll answers).
    package var onQuiesce: (() -> Void)?
    private var headTimer: Scheduled<Void>?
    /// Bytes arrived since the connection went idle, but no complete request head yet.
    private var partialRequest = false

    package init(configuration: Configuration, logger: Logger, tookOver: @escaping () -> Void) {
        self.configuration = configuration
        self.logger = logger
        self.tookOver = tookOver
    }

    /// Shutdown has begun: nothing new may start on this connection.
    package var isShuttingDown: Bool { machine.shuttingDown }

    // MARK: Channel events

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armHeadTimer() }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        disarmHeadTimer()
        self.context = nil
    }

    package func channelActive(context: ChannelHandlerContext) {
        armHeadTimer()
        context.fireChannelActive()
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        // The decoder passes every read on; with the timer armed and no head, the bytes read so
        // far are the start of a request.
        if headTimer != nil { partialRequest = true }
        context.fireChannelReadComplete()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        let undo = onInactive
        onInactive = nil
        undo?()
        context.fireChannelInactive()
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        let action: StateMachine.ReadAction
        switch part {
        case .head(let head):
            disarmHeadTimer()
            keepAlive = head.isKeepAlive
            action = machine.head(head, route: route(head, context: context))
        case .body(let chunk):
            action = machine.body(chunk)
        case .end:
            action = machine.end()
        }
        switch action {
        case .forward:
            context.fireChannelRead(data)
        case .stepAside:
            // A connection that asks for an upgrade never comes back to HTTP (the upgrade is done
            // or refused with `connection: close`), and after one the bytes are no longer HTTP.
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        case .none:
            break
        case .answer(let index, let head, let body):
            configuration.endpoints[index].answer(head, body: body, interceptor: self)
        case .answerTooLarge(let index, let head, let close):
            configuration.endpoints[index].answerTooLarge(head, close: close, interceptor: self)
        case .respond(let status, let message, let close):
            respond(status: status, json: ["error": .string(message)], close: close)
        case .refuseShuttingDown:
            respondShuttingDown()
        }
    }

    private func route(_ head: HTTPRequestHead, context: ChannelHandlerContext) -> Route {
        let isFirstRequest = configuration.upgradeHandler(context.pipeline.syncOperations) != nil
        for (index, endpoint) in configuration.endpoints.enumerated() where endpoint.matches(head, isFirstRequest: isFirstRequest) {
            return .ours(endpoint: index, maxBodySize: endpoint.maxBodySize(head), drainsOversized: endpoint.drainsOversizedBody)
        }
        return head.headers.contains(name: "upgrade") ? .upgradeHandler : .server
    }

    /// Answers pass here on their way out: an answer's `.end` makes the connection idle again.
    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // A stream's handler writes raw bytes through here until this handler leaves the pipeline.
        guard machine.state != .done else { return context.write(data, promise: promise) }
        // The machine learns of the answer's end before it is written: writing it lets NIO's
        // pipeline handler deliver the next request at once, from inside this write.
        let action: StateMachine.WrittenAction
        if case .end = unwrapOutboundIn(data) { action = machine.answerEnded() } else { action = .none }
        context.write(data, promise: promise)
        perform(action, context: context)
    }

    private func perform(_ action: StateMachine.WrittenAction, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .armHeadTimer:
            armHeadTimer()
        case .close:
            context.flush()
            context.close(promise: nil)
        }
    }

    /// A request NIO's decoder cannot parse (delivered in order by the pipeline handler).
    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else { return context.fireErrorCaught(error) }
        switch machine.parseError() {
        case .forward:
            context.fireErrorCaught(error)
        case .close:
            context.close(promise: nil)
        case .respondAndClose:
            respond(status: .badRequest, json: ["error": "malformed HTTP request"], close: true)
        }
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // With NIO's pipeline handler in front the event comes through `QuiesceObserver` instead.
        if event is ChannelShouldQuiesceEvent { quiesce(context: context) }
        context.fireUserInboundEventTriggered(event)
    }

    /// The server is shutting down (told by `QuiesceObserver`).
    package func serverQuiescing() {
        guard let context else { return }
        quiesce(context: context)
    }

    /// The server stops: an idle connection closes now, a busy one after its answer (at the latest
    /// after the grace period), and requests that follow are refused.
    private func quiesce(context: ChannelHandlerContext) {
        let action = machine.quiesce()
        guard action != .none else { return }
        let channel = context.channel
        context.eventLoop.scheduleTask(in: configuration.limits.shutdownGracePeriod) { channel.close(promise: nil) }
        switch action {
        case .close:
            context.close(promise: nil)
        case .answerNow:
            let answerNow = onQuiesce
            onQuiesce = nil
            answerNow?()
        case .closeAfterAnswer, .none:
            break
        }
    }

    // MARK: Request-head timeout

    /// Starts the wait for the next request head (when the connection is idle).
    private func armHeadTimer() {
        guard let context, headTimer == nil, machine.isIdle else { return }
        partialRequest = false
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        headTimer = context.eventLoop.scheduleTask(in: configuration.limits.requestHeadTimeout) {
            let interceptor = loopBound.value
            interceptor.headTimer = nil
            guard let context = interceptor.context else { return }
            switch interceptor.machine.headTimedOut(partial: interceptor.partialRequest) {
            case .none:
                break
            case .close:
                context.close(promise: nil)
            case .respondAndClose:
                // No request reached NIO's pipeline handler, which would take an answer now for a
                // protocol violation: it leaves first (the connection closes after this answer).
                if let pipelining = try? context.pipeline.syncOperations.handler(type: HTTPServerPipelineHandler.self) {
                    context.pipeline.syncOperations.removeHandler(pipelining, promise: nil)
                }
                let seconds = interceptor.configuration.limits.requestHeadTimeout.nanoseconds / 1_000_000_000
                interceptor.respond(status: .requestTimeout, json: ["error": .string("request head not complete within \(seconds) s")], close: true)
            }
        }
    }

    private func disarmHeadTimer() {
        headTimer?.cancel()
        headTimer = nil
        partialRequest = false
    }

    // MARK: Answers (for endpoints)

    /// Writes a complete answer with `{…}` JSON (or no body); closes after it when asked, when the
    /// request did not keep the connection alive, or during shutdown.
    package func respond(status: HTTPResponseStatus, headers extra: [(String, String)] = [], json: JSONValue?, close: Bool = false) {
        var body = ByteBuffer()
        if let json { JSONWriter.write(json, into: &body) }
        respond(status: status, headers: extra, body: body, contentType: json == nil ? nil : "application/json; charset=utf-8", close: close)
    }

    package func respond(status: HTTPResponseStatus, headers extra: [(String, String)], body: ByteBuffer, contentType: String?, close: Bool) {
        guard let context else { return }
        onInactive = nil
        let close = close || !keepAlive || machine.shuttingDown
        var headers = HTTPHeaders()
        if let contentType { headers.add(name: "content-type", value: contentType) }
        headers.add(name: "content-length", value: String(body.readableBytes))
        for (name, value) in extra { headers.add(name: name, value: value) }
        if close { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        // Told before the `.end` is written (the next request may arrive from inside that write).
        let after: StateMachine.WrittenAction
        if close {
            machine.handedOver()  // nothing more is read
            after = .none
        } else {
            after = machine.answerEnded()
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
        perform(after, context: context)
    }

    /// A refused connect: its status and `{"error": reason}`.
    package func respond(_ refusal: ConnectRefusal, close: Bool = false) {
        respond(status: HTTPResponseStatus(statusCode: refusal.status), json: refusal.body, close: close)
    }

    /// 503 and close: once shutdown has begun, nothing new starts on this connection.
    package func respondShuttingDown() {
        respond(status: .serviceUnavailable, json: ["error": "server shutting down"], close: true)
    }

    /// Hands a request an endpoint held back to the HTTP server after all.
    package func passOn(_ head: HTTPRequestHead, body: ByteBuffer?) {
        guard let context else { return }
        machine.passedOn()
        context.fireChannelRead(wrapInboundOut(.head(head)))
        if let body { context.fireChannelRead(wrapInboundOut(.body(body))) }
        context.fireChannelRead(wrapInboundOut(.end(nil)))
        context.fireChannelReadComplete()
    }

    /// Runs a Phoenix socket's connect handler and continues on this loop with its result.
    package func connect(_ socket: PhoenixSocket, _ request: ConnectRequest, then body: @escaping (ConnectResult) -> Void) {
        guard let context else { return }
        let promise = context.eventLoop.makePromise(of: ConnectResult.self)
        promise.completeWithTask { await socket.accept(request) }
        let loopBound = NIOLoopBound(body, eventLoop: context.eventLoop)
        promise.futureResult.whenSuccess { loopBound.value($0) }
    }

    // MARK: Taking the connection over (for endpoints)

    /// The connection stops being HTTP: NIO's HTTP handlers in front leave before anything else is
    /// written (the pipeline handler and the encoder would be handed raw bytes otherwise; requests
    /// the pipeline handler held back come here and are dropped), then `install` puts the new
    /// handlers right after this one, and this handler and the request decoder leave.
    /// `firstRequest`: the connection's outcome is decided here, not by the upgrade handler (which
    /// is removed).
    package func takeOver(firstRequest: Bool = false, install: (ChannelPipeline.SynchronousOperations, ChannelHandlerContext) throws -> Void) throws {
        guard let context else { return }
        machine.handedOver()
        onInactive = nil
        if firstRequest { tookOver() }
        let pipeline = context.pipeline.syncOperations
        if let upgrader = configuration.upgradeHandler(pipeline) {
            pipeline.removeHandler(upgrader, promise: nil)
        }
        if let pipelining = try? pipeline.handler(type: HTTPServerPipelineHandler.self) {
            pipeline.removeHandler(pipelining, promise: nil)
        }
        if let observer = try? pipeline.handler(type: QuiesceObserver.self) {
            pipeline.removeHandler(observer, promise: nil)
        }
        pipeline.removeHandler(try pipeline.handler(type: HTTPResponseEncoder.self), promise: nil)
        try install(pipeline, context)
        // This handler first, then the request decoder, whose leftover bytes (after an upgrade
        // request, the client's first frames) go on to the new handlers.
        let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        pipeline.removeHandler(context: context, promise: nil)
        if let decoder { pipeline.removeHandler(decoder, promise: nil) }
    }
}
