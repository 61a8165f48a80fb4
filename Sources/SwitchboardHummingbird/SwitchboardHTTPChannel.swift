import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Switchboard
import SwitchboardTransports

/// A Hummingbird child channel that serves ordinary HTTP through the app's router and upgrades
/// requests for Phoenix socket paths to WebSocket connections owned by NIO handlers (no task per
/// connection once upgraded).
public struct SwitchboardHTTPChannel: ServerChildChannel, HTTPChannelHandler {
    public struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<SwitchboardUpgradeResult>
        public let channel: any Channel
    }

    public let responder: HTTPChannelHandler.Responder
    let sockets: [(path: String, socket: PhoenixSocket)]
    let plainResponder: PlainUpgradeResponder?
    let http1: HTTP1Channel.Configuration
    let interception: HTTPInterceptor.Configuration

    /// - Parameters:
    ///   - sockets: Phoenix sockets by mount path (e.g. `/socket`; the WebSocket is at `/socket/websocket`).
    ///   - plainChannels: the router of plain WebSocket channels (`router.plainChannel(…)` routes).
    ///   - eventStreams: Server-Sent Events endpoints by path (e.g. `/events`), each joining its
    ///     topics through a Phoenix socket's connect handler and channels.
    public init(
        responder: @escaping HTTPChannelHandler.Responder,
        sockets: [String: PhoenixSocket],
        eventStreams: [String: PhoenixSocket] = [:],
        plainChannels: Router<PlainUpgradeContext>? = nil,
        http1: HTTP1Channel.Configuration = .init()
    ) {
        let plainResponder: PlainUpgradeResponder? = plainChannels.map { router in
            let plainRouter = router.buildResponder()
            return { request, context in try await plainRouter.respond(to: request, context: context) }
        }
        self.init(responder: responder, sockets: sockets, eventStreams: eventStreams, plainResponder: plainResponder, http1: http1)
    }

    init(
        responder: @escaping HTTPChannelHandler.Responder,
        sockets: [String: PhoenixSocket],
        eventStreams: [String: PhoenixSocket],
        plainResponder: PlainUpgradeResponder?,
        api: HubAPI? = nil,
        http1: HTTP1Channel.Configuration,
        limits: HTTPConnectionLimits = .init()
    ) {
        self.responder = responder
        self.sockets = sockets.map { (path: Self.mountPath($0.key), socket: $0.value) }
        self.plainResponder = plainResponder
        self.http1 = http1
        // The interceptor's endpoints, in the order they are tried.
        var interception = HTTPInterceptor.Configuration(limits: limits)
        for (mount, socket) in eventStreams {
            interception.endpoints.append(EventStreamEndpoint(mount: Self.mountPath(mount), socket: socket))
        }
        for (mount, socket) in self.sockets where socket.configuration.longPoll {
            interception.endpoints.append(LongPollEndpoint(path: mount + "/longpoll", socket: socket, registry: LongPollRegistry()))
        }
        if let api { interception.endpoints.append(PublishEndpoint(api: api)) }
        if let plainResponder { interception.endpoints.append(PlainEventStreamEndpoint(responder: plainResponder)) }
        interception.endpoints.append(WebSocketUpgradeEndpoint(sockets: self.sockets, plainResponder: plainResponder))
        interception.upgradeHandler = { pipeline in try? pipeline.handler(type: NIOTypedHTTPServerUpgradeHandler<SwitchboardUpgradeResult>.self) }
        self.interception = interception
    }

    private static func mountPath(_ path: String) -> String {
        path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let decision = NIOLoopBoundBox<UpgradeDecision?>(nil, eventLoop: channel.eventLoop)
            let upgrader = PhoenixWebSocketUpgrader(sockets: sockets, plainResponder: plainResponder, decision: decision, logger: logger)
            let http1 = self.http1
            let configuration = NIOTypedHTTPServerUpgradeConfiguration<SwitchboardUpgradeResult>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandlers(http1.additionalChannelHandlers())
                        // As Hummingbird's own HTTP1Channel does: `http1.idleTimeout` works through it.
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: http1.idleTimeout.map { .nanoseconds($0.nanoseconds) }, logger: logger)
                        )
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        if case .refused(let refusal) = decision.value {
                            return .refused(asyncChannel, refusal)
                        }
                        return .notUpgraded(asyncChannel)
                    }
                }
            )
            var pipeline = NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: configuration)
            // NIO's pipeline handler answers requests one at a time, in order, whoever answers
            // them (Hummingbird or the interceptor). Parse errors are delivered in order through
            // it and answered by the interceptor, with a reason.
            pipeline.enablePipelining = true
            pipeline.enableErrorHandling = false
            pipeline.enableResponseHeaderValidation = false
            let upgraded = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: pipeline)
            // The interceptor is in every connection: it keeps the request-head timeout, closes
            // the connection at shutdown, upgrades later requests, and takes SSE, long-poll and
            // publish requests before the upgrade handler sees them. When an event stream takes
            // the connection's first request, the connection's outcome is decided by that, not
            // by the upgrade handler (which is then removed and fails).
            let outcome = channel.eventLoop.makePromise(of: SwitchboardUpgradeResult.self)
            let decided = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            let interceptor = HTTPInterceptor(configuration: interception, logger: logger) {
                guard !decided.value else { return }
                decided.value = true
                outcome.succeed(.eventStream)
            }
            let observer = QuiesceObserver(interceptor: interceptor)
            upgraded.whenComplete { result in
                if case .success(.webSocket) = result, let observer = try? channel.pipeline.syncOperations.handler(type: QuiesceObserver.self) {
                    channel.pipeline.syncOperations.removeHandler(observer, promise: nil)  // not HTTP any more
                }
                guard !decided.value else { return }
                decided.value = true
                outcome.completeWith(result)
            }
            let operations = channel.pipeline.syncOperations
            try operations.addHandler(observer, position: .before(try operations.handler(type: HTTPServerPipelineHandler.self)))
            try operations.addHandler(
                interceptor,
                position: .before(try operations.handler(type: NIOTypedHTTPServerUpgradeHandler<SwitchboardUpgradeResult>.self))
            )
            return Value(upgradeResult: outcome.futureResult, channel: channel)
        }
    }

    public func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .webSocket, .eventStream:
                return  // the connection's handlers own it now
            case .notUpgraded(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .refused(let http, let refusal):
                await writeRefusal(http, refusal, logger: logger)
            }
        } catch {
            logger.debug("upgrade failed", metadata: ["error": "\(error)"])
            value.channel.close(promise: nil)
        }
    }

    private func writeRefusal(_ asyncChannel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, _ refusal: ConnectRefusal, logger: Logger) async {
        do {
            try await asyncChannel.executeThenClose { _, outbound in
                var body = ByteBuffer()
                if let json = refusal.body {
                    JSONWriter.write(json, into: &body)
                }
                var headers: HTTPFields = [.connection: "close", .contentLength: String(body.readableBytes)]
                if body.readableBytes > 0 { headers[.contentType] = "application/json" }
                try await outbound.write(.head(HTTPResponse(status: .init(code: refusal.status), headerFields: headers)))
                if body.readableBytes > 0 { try await outbound.write(.body(body)) }
                try await outbound.write(.end(nil))
            }
        } catch {
            logger.trace("could not write refusal", metadata: ["error": "\(error)"])
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with Phoenix sockets mounted at the given paths, e.g. `["/socket": socket]`, and
    /// the plain WebSocket channels of `plainChannels`.
    /// Long-poll is served at `{mount}/longpoll` for every socket whose configuration allows it;
    /// Server-Sent Events at each path of `eventStreams` (`GET /events?topics=a,b`, `GET /events/<topic>`).
    /// With `api` (the `HubAPI` also registered on the app's router), `POST /api/broadcast` is
    /// answered on the connection's event loop before the router sees it: the same checks and
    /// answers as the route, without a task and two thread hops per publish.
    /// `limits`: how long a connection may take to send a request head (and stay idle between
    /// requests), and how long a busy HTTP connection may hold a shutdown.
    public static func switchboard(
        sockets: [String: PhoenixSocket] = [:],
        eventStreams: [String: PhoenixSocket] = [:],
        plainChannels: Router<PlainUpgradeContext>? = nil,
        api: HubAPI? = nil,
        http1: HTTP1Channel.Configuration = .init(),
        limits: HTTPConnectionLimits = .init()
    ) -> HTTPServerBuilder {
        // Build the plain-channel responder now: routers are not Sendable, responders are.
        let plainResponder: PlainUpgradeResponder? = plainChannels.map { router in
            let responder = router.buildResponder()
            return { request, context in try await responder.respond(to: request, context: context) }
        }
        return .init { responder in
            SwitchboardHTTPChannel(
                responder: responder,
                sockets: sockets,
                eventStreams: eventStreams,
                plainResponder: plainResponder,
                api: api,
                http1: http1,
                limits: limits
            )
        }
    }
}
