import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Switchboard
import SwitchboardTransports

/// Where Server-Sent Events and long-poll requests are served, by path.
struct StreamingEndpoints: Sendable {
    /// SSE mounts: `GET {mount}?topics=a,b` and `GET {mount}/{topic}`.
    var eventStreams: [(path: String, socket: PhoenixSocket)] = []
    /// Long-poll mounts: `{socket mount}/longpoll`, each with its sessions.
    var longPolls: [(path: String, socket: PhoenixSocket, registry: LongPollRegistry)] = []
    /// The plain-channel routes, asked about `GET` requests that accept `text/event-stream`.
    var plainResponder: PlainUpgradeResponder?
    /// `POST {path}` publishes through this API on the connection's event loop (no task per request).
    var publish: (path: String, api: HubAPI)?
    /// Limits every HTTP connection keeps, whatever it asks for.
    var limits = HTTPConnectionLimits()
    /// Phoenix WebSocket mounts, for upgrades on a later request of a kept-alive connection
    /// (NIO's upgrade handler takes only a connection's first request).
    var webSockets: [(path: String, socket: PhoenixSocket)] = []
}

/// Sits in every HTTP connection's pipeline, right after the request decoder, and takes the
/// requests for SSE and long-poll endpoints, and HTTP API publishes, before Hummingbird sees them
/// (on any request of a keep-alive connection, not only the first). Everything else passes
/// through untouched.
///
/// A publish (`POST /api/broadcast`) is answered here, on the connection's event loop: handing it
/// to a Hummingbird task and back costs two thread wake-ups, which under fan-out load (every core
/// busy) took milliseconds and showed in every delivery's latency.
///
/// An SSE request becomes a stream owned by an `EventStreamHandler` (the HTTP handlers are taken
/// out of its way: no task and no async channel per stream when it is the connection's first
/// request). Long-poll requests are answered here and the connection stays HTTP. Answers keep the
/// order of pipelined requests: while one of our requests is being answered, later requests wait;
/// and our answer waits until the HTTP server has written its answers to the requests before it
/// (its responses pass this handler, which counts them).
final class StreamingRequestRouter: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked: all state is used only on the channel's event loop (handler callbacks, and
    // futures hopped there with `hop(to:)` before they touch it).
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Mode {
        /// Passing requests to the HTTP server (`forwarding`: inside a request that is passed on).
        case http(forwarding: Bool)
        /// Reading one of our requests.
        case collecting(HTTPRequestHead, ByteBuffer?, Endpoint)
        /// Reading the rest of a publish that is too large, to answer it once it is all read (so
        /// closing does not reset the connection under the client's answer); bytes read so far.
        case discarding(APIError, Int)
        /// Answering one of our requests; later parts wait.
        case busy
        /// The connection is an event stream now.
        case streaming
    }

    fileprivate enum Endpoint {
        case eventStream(PhoenixSocket, pathTopic: String?)
        case longPoll(PhoenixSocket, LongPollRegistry)
        /// Maybe a plain channel's route: the plain router decides (else the request goes on to HTTP).
        case plainEventStream
        /// A publish through the HTTP API.
        case publish(HubAPI)
        /// A WebSocket upgrade on a later request of a kept-alive connection.
        case webSocketUpgrade
    }

    private let endpoints: StreamingEndpoints
    private let logger: Logger
    /// Called when an SSE stream takes the connection over (the connection's first request has
    /// not reached the HTTP server, so it must not wait for one).
    private let tookOver: () -> Void
    private var mode = Mode.http(forwarding: false)
    private var waiting: [HTTPServerRequestPart] = []
    private var context: ChannelHandlerContext?
    /// Undo for whatever our request in progress waits on (a pending SSE join, a parked poll).
    private var onInactive: (() -> Void)? {
        didSet { if onInactive == nil { onQuiesce = nil } }
    }
    /// What to do with our request in progress when the server shuts down (a parked poll).
    private var onQuiesce: (() -> Void)?
    /// The request being answered asked for `connection: close` (or is HTTP/1.0 without keep-alive).
    private var closeAfterAnswer = false
    /// Requests passed to the HTTP server whose response has not been written completely yet.
    private var serverResponsesOwed = 0
    /// Our answer to a request pipelined behind those: it waits until they are written.
    private var afterServerResponses: (() -> Void)?
    /// The server is shutting down: no new request is served, the connection closes once idle.
    private var shuttingDown = false
    /// Closes the connection if no complete request head arrives in time (armed while idle).
    private var headTimer: Scheduled<Void>?
    /// Bytes arrived since the connection went idle, but no complete request head yet.
    private var partialRequest = false

    /// Most bytes of an oversized publish read (and dropped) before answering; beyond, the answer
    /// goes out at once and the connection closes.
    static let maxDiscardedBytes = 64 << 20

    init(endpoints: StreamingEndpoints, logger: Logger, tookOver: @escaping () -> Void) {
        self.endpoints = endpoints
        self.logger = logger
        self.tookOver = tookOver
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armHeadTimer() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headTimer?.cancel()
        headTimer = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        armHeadTimer()
        context.fireChannelActive()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The decoder passes every read on; with a timer armed and no head, the bytes read so far
        // are the start of a request.
        if headTimer != nil { partialRequest = true }
        context.fireChannelReadComplete()
    }

    /// True between requests: nothing of ours or the HTTP server's is being read or answered.
    private var isIdle: Bool {
        if case .http(forwarding: false) = mode { return serverResponsesOwed == 0 && afterServerResponses == nil }
        return false
    }

    /// Starts the wait for the next request head (when the connection is idle).
    private func armHeadTimer() {
        guard let context, headTimer == nil, isIdle else { return }
        partialRequest = false
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        headTimer = context.eventLoop.scheduleTask(in: endpoints.limits.requestHeadTimeout) {
            let router = loopBound.value
            router.headTimer = nil
            guard let context = router.context, router.isIdle else { return }
            if router.partialRequest {
                let seconds = router.endpoints.limits.requestHeadTimeout.nanoseconds / 1_000_000_000
                router.mode = .busy
                router.respond(status: .requestTimeout, json: ["error": .string("request head not complete within \(seconds) s")], close: true)
            } else {
                context.close(promise: nil)
            }
        }
    }

    private func disarmHeadTimer() {
        headTimer?.cancel()
        headTimer = nil
        partialRequest = false
    }

    /// The server stops: an idle connection closes now, a busy one after its answer (at the
    /// latest after the grace period), and requests that follow are refused.
    private func quiesce(context: ChannelHandlerContext) {
        guard !shuttingDown else { return }
        shuttingDown = true
        closeAfterAnswer = true
        let channel = context.channel
        context.eventLoop.scheduleTask(in: endpoints.limits.shutdownGracePeriod) { channel.close(promise: nil) }
        if let quiesce = onQuiesce {
            onQuiesce = nil
            onInactive = nil
            return quiesce()
        }
        if isIdle { context.close(promise: nil) }
    }

    /// A request the HTTP decoder cannot parse is answered 400 and the connection closed (the
    /// decoder reads nothing more after an error, so the connection could only hang otherwise).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else { return context.fireErrorCaught(error) }
        switch mode {
        case .streaming:
            context.fireErrorCaught(error)
        case .busy:
            context.close(promise: nil)  // our answer in progress cannot be followed by another
        case .http, .collecting, .discarding:
            mode = .busy
            waiting = []
            answerInTurn { [self] in
                respond(status: .badRequest, json: ["error": "malformed HTTP request"], close: true)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let undo = onInactive
        onInactive = nil
        undo?()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        process(unwrapInboundIn(data), context: context)
    }

    /// The HTTP server's responses pass here on their way out: counts the completed ones, and
    /// answers our request that waited for them.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // A stream's handler writes raw bytes through here until this router leaves the pipeline.
        if case .streaming = mode { return context.write(data, promise: promise) }
        let ended: Bool
        if case .end = unwrapOutboundIn(data) { ended = true } else { ended = false }
        context.write(data, promise: promise)
        guard ended else { return }
        serverResponsesOwed = max(0, serverResponsesOwed - 1)
        if serverResponsesOwed == 0, let answer = afterServerResponses {
            afterServerResponses = nil
            answer()
        } else if isIdle {
            if shuttingDown {
                context.flush()
                context.close(promise: nil)
            } else {
                armHeadTimer()
            }
        }
    }

    /// Runs `answer` now, or once the HTTP server has answered every request passed to it before
    /// (so answers keep the order of pipelined requests).
    private func answerInTurn(_ answer: @escaping () -> Void) {
        if serverResponsesOwed == 0 {
            answer()
        } else {
            afterServerResponses = answer
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            if case .streaming = mode { return context.fireUserInboundEventTriggered(event) }
            // Handled here for every HTTP state (the upgrade handler and the HTTP server do not
            // close a kept-alive connection, nor one whose request head is still incomplete).
            return quiesce(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func process(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch mode {
        case .streaming:
            return  // an event stream ignores what the client sends
        case .busy:
            waiting.append(part)
        case .discarding(let error, let discarded):
            switch part {
            case .body(let chunk) where discarded + chunk.readableBytes > Self.maxDiscardedBytes:
                mode = .busy
                respond(error, close: true)
            case .body(let chunk):
                mode = .discarding(error, discarded + chunk.readableBytes)
            case .end:
                mode = .busy
                answerInTurn { [self] in respond(error) }
            case .head:
                mode = .busy
                respond(status: .badRequest, json: ["error": "request head inside a request body"], close: true)
            }
        case .http(let forwarding):
            if forwarding {
                if case .end = part { mode = .http(forwarding: false) }
                context.fireChannelRead(wrapInboundOut(part))
                return
            }
            guard case .head(let head) = part else {
                context.fireChannelRead(wrapInboundOut(part))
                return
            }
            disarmHeadTimer()
            if shuttingDown {
                // No new stream, upgrade, poll or request once shutdown has begun.
                mode = .busy
                return answerInTurn { [self] in respondShuttingDown() }
            }
            if let endpoint = endpoint(for: head) {
                mode = .collecting(head, nil, endpoint)
            } else if head.headers.contains(name: "upgrade") {
                if !isFirstRequest(context), head.headers[canonicalForm: "Upgrade"].contains(where: { $0.lowercased() == "websocket" }) {
                    // NIO's upgrade handler is gone (it takes only the first request): ours to do.
                    mode = .collecting(head, nil, .webSocketUpgrade)
                    return
                }
                // A connection that asks for an upgrade never comes back to HTTP (an upgrade is
                // either done or refused with `connection: close`), and after one the bytes here
                // are no longer HTTP: step out of the way.
                context.fireChannelRead(wrapInboundOut(part))
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            } else {
                mode = .http(forwarding: true)
                serverResponsesOwed += 1
                context.fireChannelRead(wrapInboundOut(part))
            }
        case .collecting(let head, var body, let endpoint):
            switch part {
            case .head:
                mode = .busy
                respond(status: .badRequest, json: ["error": "request head inside a request body"], close: true)
            case .body(var chunk):
                let limit = endpoint.maxBodySize
                if (body?.readableBytes ?? 0) + chunk.readableBytes > limit {
                    if case .publish = endpoint {
                        mode = .discarding(APIError(.contentTooLarge, "body_too_large", "request body over \(limit) bytes"), 0)
                        closeAfterAnswer = shuttingDown || !head.isKeepAlive
                        return
                    }
                    mode = .busy
                    return respond(status: .payloadTooLarge, json: ["error": "request body too large"], close: true)
                }
                if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
                mode = .collecting(head, body, endpoint)
            case .end:
                mode = .busy
                closeAfterAnswer = shuttingDown || !head.isKeepAlive
                answerInTurn { [self] in
                    switch endpoint {
                    case .eventStream(let socket, let pathTopic):
                        startEventStream(head, socket: socket, pathTopic: pathTopic)
                    case .longPoll(let socket, let registry):
                        longPoll(head, body: body ?? ByteBuffer(), socket: socket, registry: registry)
                    case .plainEventStream:
                        startPlainEventStream(head, body: body)
                    case .publish(let api):
                        publish(head, body: body ?? ByteBuffer(), api: api)
                    case .webSocketUpgrade:
                        upgrade(head)
                    }
                }
            }
        }
    }


    private func endpoint(for head: HTTPRequestHead) -> Endpoint? {
        let path = QueryString.split(uri: head.uri).path
        for (mount, socket) in endpoints.eventStreams {
            if path == mount { return .eventStream(socket, pathTopic: nil) }
            if path.hasPrefix(mount + "/"), path.count > mount.count + 1 {
                let raw = String(path.dropFirst(mount.count + 1))
                return .eventStream(socket, pathTopic: raw.removingPercentEncoding ?? raw)
            }
        }
        for (mount, socket, registry) in endpoints.longPolls where path == mount + "/longpoll" {
            return .longPoll(socket, registry)
        }
        if let publish = endpoints.publish, head.method == .POST, path == publish.path {
            return .publish(publish.api)
        }
        if endpoints.plainResponder != nil, head.method == .GET,
            head.headers[canonicalForm: "Accept"].contains(where: { $0.lowercased().hasPrefix("text/event-stream") })
        {
            return .plainEventStream
        }
        return nil
    }

    // MARK: Answers

    /// Writes a complete response; then either closes the connection or goes back to HTTP and
    /// processes the requests that waited.
    private func respond(status: HTTPResponseStatus, headers extra: [(String, String)] = [], json: JSONValue?, close: Bool = false) {
        var body = ByteBuffer()
        if let json { JSONWriter.write(json, into: &body) }
        respond(status: status, headers: extra, body: body, contentType: json == nil ? nil : "application/json; charset=utf-8", close: close)
    }

    private func respond(status: HTTPResponseStatus, headers extra: [(String, String)], body: ByteBuffer, contentType: String?, close: Bool) {
        guard let context else { return }
        onInactive = nil
        let close = close || closeAfterAnswer
        var headers = HTTPHeaders()
        if let contentType { headers.add(name: "content-type", value: contentType) }
        headers.add(name: "content-length", value: String(body.readableBytes))
        for (name, value) in extra { headers.add(name: name, value: value) }
        if close { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
            mode = .streaming  // nothing more is read
            waiting = []
            return
        }
        mode = .http(forwarding: false)
        let parked = waiting
        waiting = []
        for part in parked {
            process(part, context: context)
        }
        armHeadTimer()
    }

    /// A refused connect: its status and `{"error": reason}`.
    private func respond(_ refusal: ConnectRefusal, close: Bool = false) {
        respond(status: HTTPResponseStatus(statusCode: refusal.status), json: refusal.body, close: close)
    }

    /// 503 and close: once shutdown has begun, nothing new starts on this connection.
    private func respondShuttingDown() {
        respond(status: .serviceUnavailable, json: ["error": "server shutting down"], close: true)
    }

    /// Runs the socket's connect handler and continues on this loop with its result.
    private func connect(_ socket: PhoenixSocket, _ request: ConnectRequest, then body: @escaping (ConnectResult) -> Void) {
        guard let context else { return }
        let promise = context.eventLoop.makePromise(of: ConnectResult.self)
        promise.completeWithTask { await socket.accept(request) }
        let loopBound = NIOLoopBound(body, eventLoop: context.eventLoop)
        promise.futureResult.whenSuccess { loopBound.value($0) }
    }

    private func connection(transport: String, id: String?, assigns: Assigns, close: @escaping @Sendable (CloseReason) -> Void) -> Connection {
        Connection(socketID: id, assigns: assigns, transport: transport, close: close)
    }

    // MARK: Server-Sent Events

    private func startEventStream(_ head: HTTPRequestHead, socket: PhoenixSocket, pathTopic: String?) {
        guard let context else { return }
        guard head.method == .GET || head.method == .HEAD else {
            return respond(status: .methodNotAllowed, headers: [("allow", "GET")], json: ["error": "event streams are read with GET"])
        }
        let request = ConnectRequest(head: head, channel: context.channel)
        var topics: [String] = []
        if let pathTopic { topics.append(pathTopic) }
        for item in request.queryItems where item.name == "topics" || item.name == "topic" {
            topics += item.value.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var seen = Set<String>()
        topics = topics.filter { seen.insert($0).inserted }
        guard !topics.isEmpty else {
            return respond(status: .badRequest, json: ["error": "no topic: use ?topics=a,b or a path ending in the topic"])
        }
        if let refusal = socket.configuration.checkOrigin.refusal(for: request) {
            return respond(refusal)
        }
        // Each topic is joined with the query parameters (other than the topic list) as its payload.
        var payload: [String: JSONValue] = [:]
        for (name, value) in request.params where name != "topics" && name != "topic" {
            payload[name] = .string(value)
        }
        let origin = head.headers.first(name: "Origin")
        connect(socket, request) { [self] result in
            guard self.context != nil else { return }  // the client left while we decided
            switch result {
            case .refuse(let status, let reason):
                respond(ConnectRefusal(status: status, reason: reason ?? "connection refused"))
            case .accept(let id, let assigns):
                let handler = EventStreamHandler(
                    eventLoop: context.eventLoop, keepAlive: socket.configuration.eventStreamKeepAlive,
                    outboundLimit: OutboundLimit(maxQueuedBytes: socket.configuration.maxQueuedBytes), logger: logger
                )
                let channel = context.channel
                let connection = connection(transport: "sse", id: id, assigns: assigns) { reason in
                    channel.eventLoop.execute { handler.close(reason) }
                }
                let session = PhoenixSession(socket: socket, transport: handler, serializer: .v2, connection: connection, logger: logger)
                // Answered once: by the joins' outcome, or by a close before they ended (a
                // disconnect, a mailbox overflow), whose reason then refuses the request.
                let answered = NIOLoopBoundBox(false, eventLoop: context.eventLoop)
                handler.attach(session) { [self] reason in
                    guard !answered.value, self.context != nil else { return }
                    answered.value = true
                    respond(ConnectRefusal(status: 403, reason: reason.reason))
                }
                onInactive = { handler.abandon() }
                session.start()
                session.join(topics: topics, payload: .object(payload)) { [self] outcome in
                    guard !answered.value else { return }
                    answered.value = true
                    guard self.context != nil else { return handler.abandon() }
                    switch outcome {
                    case .joined:
                        open(handler, retry: socket.configuration.eventStreamRetry, origin: origin, headOnly: head.method == .HEAD)
                    case .refused(let topic, let reason):
                        handler.abandon()
                        respond(status: .forbidden, json: ["error": .string(reason), "topic": .string(topic)])
                    }
                }
            }
        }
    }

    /// Answers with the stream's head and hands the connection to the stream's handler.
    private func open(_ handler: EventStreamHandler, retry: TimeAmount, origin: String?, headOnly: Bool) {
        guard let context else { return handler.abandon() }
        // Shutdown began while the stream's joins were decided: no new stream.
        guard !shuttingDown else {
            handler.abandon()
            return respondShuttingDown()
        }
        onInactive = nil
        mode = .streaming
        waiting = []
        tookOver()
        let pipeline = context.pipeline.syncOperations
        do {
            if let upgrader = try? pipeline.handler(type: NIOTypedHTTPServerUpgradeHandler<SwitchboardUpgradeResult>.self) {
                pipeline.removeHandler(upgrader, promise: nil)
            }
            // From here on the stream writes raw bytes: the HTTP encoder must not see them.
            let encoder = try pipeline.handler(type: HTTPResponseEncoder.self)
            pipeline.removeHandler(encoder, promise: nil)
            var head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\nx-accel-buffering: no\r\nconnection: close\r\n"
            if let origin {
                head += "access-control-allow-origin: \(origin)\r\naccess-control-allow-credentials: true\r\nvary: origin\r\n"
            }
            head += "\r\n"
            var bytes = ByteBuffer(string: head)
            if headOnly {
                handler.abandon()
                let channel = context.channel
                context.writeAndFlush(NIOAny(bytes)).whenComplete { _ in channel.close(promise: nil) }
                return
            }
            var retryLine = EventStreamEncoding.retry(milliseconds: Int(retry.nanoseconds / 1_000_000))
            bytes.writeBuffer(&retryLine)
            context.write(NIOAny(bytes), promise: nil)
            try handler.outboundLimit.install(on: context.channel)
            // The stream's handler goes right after this one: its writes pass only the handlers in
            // front (the request decoder ignores them), and it sees the connection's end first.
            try pipeline.addHandler(handler, position: .after(self))
            // The stream needs no HTTP parsing any more: take the request decoder and this router
            // out, so every write and read passes fewer handlers (leftover input reaches the
            // stream's handler, which ignores it).
            if let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
                pipeline.removeHandler(decoder, promise: nil)
            }
            pipeline.removeHandler(context: context, promise: nil)
        } catch {
            logger.debug("could not open event stream", metadata: ["error": "\(error)"])
            handler.abandon()
            context.close(promise: nil)
        }
    }

    // MARK: Plain channels over Server-Sent Events

    /// Asks the plain-channel routes about an event-stream request: a route that accepts gets a
    /// client whose transport is the stream; no route → the request goes on to the HTTP server.
    private func startPlainEventStream(_ head: HTTPRequestHead, body: ByteBuffer?) {
        guard let context, let plainResponder = endpoints.plainResponder else { return }
        guard let request = try? HTTPRequest(head, secure: false, splitCookie: false) else {
            return respond(status: .badRequest, json: ["error": "invalid request"])
        }
        let future = PhoenixWebSocketUpgrader.askPlainRoutes(plainResponder, request: request, channel: context.channel, logger: logger)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let origin = head.headers.first(name: "Origin")
        future.whenSuccess { decision in
            let router = loopBound.value
            guard let context = router.context else { return }
            switch decision {
            case .plain where router.shuttingDown:
                router.respondShuttingDown()
            case .plain(let configuration, let assigns, let makeSession) where configuration.eventStreams:
                let handler = EventStreamHandler(
                    eventLoop: context.eventLoop, format: configuration.eventStreamFormat, keepAlive: configuration.eventStreamKeepAlive,
                    outboundLimit: OutboundLimit(maxQueuedBytes: configuration.maxQueuedBytes), logger: router.logger
                )
                let channel = context.channel
                let connection = Connection(socketID: nil, assigns: assigns, transport: "sse") { reason in
                    channel.eventLoop.execute { handler.close(reason) }
                }
                let session = makeSession(handler, connection)
                handler.attach(session)
                router.open(handler, retry: configuration.eventStreamRetry, origin: origin, headOnly: false)
                if handler.isOpen { session.start() }
            case .refused(let refusal):
                router.respond(refusal)
            case .plain, .accepted, .none:
                router.passOn(head, body: body, context: context)
            }
        }
    }

    /// Hands a request we held back to the HTTP server after all, then goes on as usual.
    private func passOn(_ head: HTTPRequestHead, body: ByteBuffer?, context: ChannelHandlerContext) {
        mode = .http(forwarding: false)
        serverResponsesOwed += 1
        context.fireChannelRead(wrapInboundOut(.head(head)))
        if let body { context.fireChannelRead(wrapInboundOut(.body(body))) }
        context.fireChannelRead(wrapInboundOut(.end(nil)))
        context.fireChannelReadComplete()
        let parked = waiting
        waiting = []
        for part in parked {
            process(part, context: context)
        }
    }

    // MARK: WebSocket upgrade on a kept-alive connection

    /// Whether NIO's upgrade handler is still there (it takes the connection's first request).
    private func isFirstRequest(_ context: ChannelHandlerContext) -> Bool {
        (try? context.pipeline.syncOperations.handler(type: NIOTypedHTTPServerUpgradeHandler<SwitchboardUpgradeResult>.self)) != nil
    }

    /// Upgrades a later request of the connection as NIO's upgrade handler does a first one: the
    /// same decisions (`PhoenixWebSocketUpgrader`), then the WebSocket handlers go in front of the
    /// HTTP server's handlers (which see nothing more) and the HTTP codec leaves.
    private func upgrade(_ head: HTTPRequestHead) {
        guard let context else { return }
        let decision = NIOLoopBoundBox<UpgradeDecision?>(nil, eventLoop: context.eventLoop)
        let upgrader = PhoenixWebSocketUpgrader(sockets: endpoints.webSockets, plainResponder: endpoints.plainResponder, decision: decision, logger: logger)
        var initial = HTTPHeaders()
        initial.add(name: "upgrade", value: "websocket")
        initial.add(name: "connection", value: "upgrade")
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        upgrader.buildUpgradeResponse(channel: context.channel, upgradeRequest: head, initialResponseHeaders: initial)
            .hop(to: context.eventLoop)
            .whenComplete { result in
                let router = loopBound.value
                guard let context = router.context else { return }
                switch result {
                case .success where router.shuttingDown:
                    router.respondShuttingDown()
                case .success(let headers):
                    router.switchProtocols(head, headers: headers, upgrader: upgrader, context: context)
                case .failure:
                    guard case .refused(let refusal) = decision.value else {
                        return router.respond(status: .badRequest, json: ["error": "invalid WebSocket upgrade request"], close: true)
                    }
                    router.respond(refusal, close: true)
                }
            }
    }

    private func switchProtocols(_ head: HTTPRequestHead, headers: HTTPHeaders, upgrader: PhoenixWebSocketUpgrader, context: ChannelHandlerContext) {
        mode = .streaming  // from here on writes pass untouched
        waiting = []
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers))), promise: nil)
        let pipeline = context.pipeline.syncOperations
        do {
            // The WebSocket handlers write raw bytes: the response encoder must be gone first.
            pipeline.removeHandler(try pipeline.handler(type: HTTPResponseEncoder.self), promise: nil)
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let channel = context.channel
            upgrader.upgrade(channel: channel, upgradeRequest: head, position: .after(self)).whenFailure { _ in channel.close(promise: nil) }
            if let state = try? pipeline.handler(type: HTTPConnectionStateHandler.self) {
                pipeline.removeHandler(state, promise: nil)  // it would close the connection as idle
            }
            // This router, then the request decoder (its leftover bytes go on to the frame decoder).
            pipeline.removeHandler(context: context, promise: nil)
            pipeline.removeHandler(decoder, promise: nil)
        } catch {
            logger.debug("could not upgrade a kept-alive connection", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // MARK: HTTP API publish

    /// `POST /api/broadcast`, answered as the API's Hummingbird route would be.
    private func publish(_ head: HTTPRequestHead, body: ByteBuffer, api: HubAPI) {
        do {
            try HubAPI.checkKey(authorization: head.headers.first(name: "Authorization"), key: api.apiKey)
            let count = try api.publish(body: body)
            respond(status: .accepted, headers: [], body: JSONWriter.buffer(HubAPI.published(count)), contentType: "application/json", close: false)
        } catch let error as APIError {
            respond(error)
        } catch {
            respond(APIError(.internalServerError, "internal_error", "\(error)"))
        }
    }

    private func respond(_ error: APIError, close: Bool = false) {
        respond(status: HTTPResponseStatus(statusCode: error.status.code), headers: [], body: JSONWriter.buffer(error.body), contentType: "application/json", close: close)
    }

    // MARK: Long-poll

    private func longPoll(_ head: HTTPRequestHead, body: ByteBuffer, socket: PhoenixSocket, registry: LongPollRegistry) {
        guard let context else { return }
        let cors: [(String, String)] = [("access-control-allow-origin", "*"), ("cache-control", "no-store")]
        func answer(_ json: JSONValue) {
            respond(status: .ok, headers: cors, json: json)
        }
        switch head.method {
        case .OPTIONS:
            var headers = cors
            headers.append(("access-control-allow-headers", head.headers.first(name: "Access-Control-Request-Headers") ?? ""))
            headers.append(("access-control-allow-methods", "get, post, options"))
            headers.append(("access-control-max-age", "3600"))
            return respond(status: .ok, headers: headers, json: nil)
        case .GET, .POST:
            break
        default:
            return respond(status: .badRequest, json: nil)
        }
        let request = ConnectRequest(head: head, channel: context.channel)
        guard socket.configuration.checkOrigin.refusal(for: request) == nil else {
            return answer(["status": 403])
        }
        // The session token: the header, else the last `token` parameter (older phoenix.js appends
        // its own after the app's, and Phoenix keeps the last one).
        let token = head.headers.first(name: "X-Phoenix-Longpoll-Token") ?? request.params["token"]
        let existing = token.flatMap { registry.session($0) }
        if head.method == .POST {
            guard let session = existing else { return answer(["status": 410]) }
            let messages = LongPollSession.messages(body, contentType: head.headers.first(name: "Content-Type"))
            let replyLoop = context.eventLoop
            let respondOnLoop = NIOLoopBound({ (json: JSONValue) in answer(json) }, eventLoop: replyLoop)
            session.eventLoop.execute {
                var result: JSONValue = ["status": 200]
                if let phoenix = session.session, !session.closed {
                    for message in messages {
                        let failure: CloseReason?
                        switch message {
                        case .text(let text): failure = phoenix.receive(text: text)
                        case .binary(let binary): failure = phoenix.receive(binary: binary)
                        case .invalid(let detail): failure = .invalidMessage(detail)
                        }
                        if let failure {
                            session.close(failure)
                            result = ["status": 400, "error": .string(failure.reason)]
                            break
                        }
                    }
                } else {
                    result = ["status": 410]
                }
                let answered = result
                replyLoop.execute { respondOnLoop.value(answered) }
            }
            return
        }
        if let session = existing {
            parkPoll(session, token: token ?? "", answer: answer)
            return
        }
        // A GET without a live session opens one (Phoenix answers 410 with the new token).
        // All parameters reach the connect handler (older phoenix.js sends the app's `token` here).
        guard let serializer = PhoenixSerializer.negotiate(vsn: request.params["vsn"]) else { return answer(["status": 403]) }
        connect(socket, request) { [self] result in
            guard let context = self.context else { return }
            switch result {
            case .refuse:
                answer(["status": 403])
            case .accept where shuttingDown:
                respondShuttingDown()  // shutdown began while connect decided: no new session
            case .accept(let id, let assigns):
                let newToken = registry.newToken()
                let transport = LongPollSession(
                    token: newToken, eventLoop: context.eventLoop, serializer: serializer, registry: registry,
                    window: socket.configuration.longPollWindow, maxQueuedBytes: socket.configuration.maxQueuedBytes, logger: logger
                )
                let loop = context.eventLoop
                let connection = connection(transport: "longpoll", id: id, assigns: assigns) { reason in
                    loop.execute { transport.close(reason) }
                }
                transport.start(PhoenixSession(socket: socket, transport: transport, serializer: serializer, connection: connection, logger: logger))
                registry.add(transport)
                answer(["status": 410, "token": .string(newToken), "messages": []])
            }
        }
    }

    /// Waits for the session's next messages (or the window's end) and answers the poll.
    private func parkPoll(_ session: LongPollSession, token: String, answer: @escaping (JSONValue) -> Void) {
        guard let context else { return }
        let replyLoop = context.eventLoop
        let respondOnLoop = NIOLoopBound({ [self] (result: LongPollSession.PollAnswer) in
            guard self.context != nil else { return }
            switch result {
            case .gone:
                answer(["status": 410])
            case .noContent:
                answer(["status": 204, "token": .string(token), "messages": []])
            case .messages(let messages):
                // The messages are JSON string literals already: splice them in.
                var body = ByteBuffer()
                body.writeString("{\"status\":200,\"token\":")
                JSONWriter.writeString(token, into: &body)
                body.writeString(",\"messages\":[")
                for (index, var message) in messages.enumerated() {
                    if index > 0 { body.writeString(",") }
                    body.writeBuffer(&message)
                }
                body.writeString("]}")
                respond(
                    status: .ok,
                    headers: [("access-control-allow-origin", "*"), ("cache-control", "no-store")],
                    body: body, contentType: "application/json; charset=utf-8", close: false
                )
            }
        }, eventLoop: replyLoop)
        let abandoned = NIOLoopBoundBox(false, eventLoop: replyLoop)
        onInactive = {
            abandoned.value = true
            session.eventLoop.execute { session.pollAbandoned() }
        }
        // The server stops: answer the poll at once (410: the session is gone, so phoenix.js
        // reconnects, elsewhere) instead of holding shutdown for the rest of the window.
        onQuiesce = { [self] in
            abandoned.value = true
            session.eventLoop.execute { session.close(.serviceRestart) }
            respond(status: .ok, headers: [("access-control-allow-origin", "*"), ("cache-control", "no-store")], json: ["status": 410], close: true)
        }
        session.eventLoop.execute {
            session.poll { result in
                replyLoop.execute {
                    guard !abandoned.value else { return }
                    respondOnLoop.value(result)
                }
            }
        }
    }
}

extension StreamingRequestRouter.Endpoint {
    /// Largest request body read for this endpoint.
    var maxBodySize: Int {
        switch self {
        case .eventStream(let socket, _): return socket.configuration.maxMessageSize
        case .longPoll(let socket, _): return socket.configuration.maxMessageSize
        case .plainEventStream: return 1 << 16
        case .publish(let api): return api.maxBodySize
        case .webSocketUpgrade: return 0
        }
    }
}
