import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import Switchboard
import SwitchboardTransports

/// Routes plain-channel upgrade requests (a Hummingbird router built on `PlainUpgradeContext`).
typealias PlainUpgradeResponder = @Sendable (Request, PlainUpgradeContext) async throws -> Response

/// Upgrades requests for `{mount}/websocket` to Phoenix WebSocket connections, and requests the
/// plain-channel router accepts to plain ones, both handled by `WebSocketConnectionHandler` (our
/// own framing, so no `WebSocketFrameEncoder` is installed).
struct PhoenixWebSocketUpgrader: NIOTypedHTTPServerProtocolUpgrader {
    typealias UpgradeResult = SwitchboardUpgradeResult

    let supportedProtocol = "websocket"
    let requiredUpgradeHeaders: [String] = []
    let sockets: [(path: String, socket: PhoenixSocket)]
    let plainResponder: PlainUpgradeResponder?
    let decision: NIOLoopBoundBox<UpgradeDecision?>
    let logger: Logger

    func buildUpgradeResponse(
        channel: any Channel,
        upgradeRequest head: HTTPRequestHead,
        initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        let loop = channel.eventLoop
        let path = QueryString.split(uri: head.uri).path
        guard let socket = sockets.first(where: { $0.path + "/websocket" == path })?.socket else {
            return buildPlainUpgradeResponse(channel: channel, head: head, initialResponseHeaders: initialResponseHeaders)
        }
        guard head.method == .GET,
            let key = head.headers.first(name: "Sec-WebSocket-Key"),
            head.headers.first(name: "Sec-WebSocket-Version") == "13"
        else {
            decision.value = .refused(ConnectRefusal(status: 400, reason: "invalid WebSocket upgrade request"))
            return loop.makeFailedFuture(UpgradeRefused())
        }
        var request = ConnectRequest(head: head, channel: channel)
        // The origin check comes first, as in Phoenix.
        if let refusal = socket.configuration.checkOrigin.refusal(for: request) {
            logger.debug("refused connection: origin not allowed", metadata: ["origin": "\(head.headers.first(name: "Origin") ?? "")"])
            decision.value = .refused(refusal)
            return loop.makeFailedFuture(UpgradeRefused())
        }
        guard let serializer = PhoenixSerializer.negotiate(vsn: request.params["vsn"]) else {
            logger.debug("refused connection: unsupported vsn", metadata: ["vsn": "\(request.params["vsn"] ?? "")"])
            decision.value = .refused(ConnectRefusal(status: 403, reason: "unsupported vsn"))
            return loop.makeFailedFuture(UpgradeRefused())
        }
        // Subprotocols: phoenix.js's authToken travels as `base64url.bearer.phx.<token>` beside `phoenix`.
        let offered = head.headers["Sec-WebSocket-Protocol"]
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        for value in offered where value.hasPrefix("base64url.bearer.phx.") {
            request.authToken = WebSocketConnection.decodeLenientBase64(String(value.dropFirst("base64url.bearer.phx.".count)))
        }
        let connectRequest = request
        let promise = loop.makePromise(of: ConnectResult.self)
        promise.completeWithTask { await socket.accept(connectRequest) }
        let decision = self.decision
        return promise.futureResult.flatMapThrowing { result in
            switch result {
            case .accept(let id, let assigns):
                decision.value = .accepted(socket: socket, serializer: serializer, id: id, assigns: assigns)
                var headers = initialResponseHeaders
                headers.add(name: "Sec-WebSocket-Accept", value: WebSocketConnection.acceptValue(for: key))
                if offered.contains("phoenix") {
                    headers.add(name: "Sec-WebSocket-Protocol", value: "phoenix")
                }
                return headers
            case .refuse(let status, let reason):
                decision.value = .refused(ConnectRefusal(status: status, reason: reason))
                throw UpgradeRefused()
            }
        }
    }

    /// Asks the plain-channel router about a path that is not a Phoenix socket.
    private func buildPlainUpgradeResponse(
        channel: any Channel,
        head: HTTPRequestHead,
        initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        let loop = channel.eventLoop
        // NIO's upgrade handler does not hand a request it tried to upgrade on to the HTTP
        // pipeline, so every upgrade we do not take is answered here (404, 400, or the refusal).
        let notFound = { () -> EventLoopFuture<HTTPHeaders> in
            self.decision.value = .refused(Self.notFound)
            return loop.makeFailedFuture(NotASocketPath())
        }
        guard let plainResponder, let request = try? HTTPRequest(head, secure: false, splitCookie: false) else {
            return notFound()
        }
        guard head.method == .GET, let key = head.headers.first(name: "Sec-WebSocket-Key"), head.headers.first(name: "Sec-WebSocket-Version") == "13"
        else {
            decision.value = .refused(ConnectRefusal(status: 400, reason: "invalid WebSocket upgrade request"))
            return loop.makeFailedFuture(UpgradeRefused())
        }
        let decision = self.decision
        return Self.askPlainRoutes(plainResponder, request: request, channel: channel, logger: logger).flatMapThrowing { plain in
            decision.value = plain ?? .refused(Self.notFound)
            switch plain {
            case .none, .accepted:
                throw NotASocketPath()
            case .refused:
                throw UpgradeRefused()
            case .plain:
                var headers = initialResponseHeaders
                headers.add(name: "Sec-WebSocket-Accept", value: WebSocketConnection.acceptValue(for: key))
                return headers
            }
        }
    }

    static let notFound = ConnectRefusal(status: 404, reason: "no WebSocket endpoint at this path")

    /// Runs the plain-channel router on a request (WebSocket upgrade or event stream): the route
    /// that matches records its decision; nil when no route matched.
    static func askPlainRoutes(
        _ responder: @escaping PlainUpgradeResponder,
        request: HTTPRequest,
        channel: any Channel,
        logger: Logger
    ) -> EventLoopFuture<UpgradeDecision?> {
        let box = PlainUpgradeDecisionBox()
        let source = PlainUpgradeContext.Source(logger: logger, decision: box, peerAddress: ConnectRequest.peerAddress(channel))
        let promise = channel.eventLoop.makePromise(of: UpgradeDecision?.self)
        promise.completeWithTask {
            _ = try? await responder(Request(head: request, body: .init(buffer: ByteBuffer())), PlainUpgradeContext(source: source))
            return box.value.withLock { $0 }
        }
        return promise.futureResult
    }

    func upgrade(channel: any Channel, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<SwitchboardUpgradeResult> {
        upgrade(channel: channel, upgradeRequest: upgradeRequest, position: .last)
    }

    /// Installs the WebSocket handlers at `position` (the interceptor upgrades a later request
    /// of a kept-alive connection in front of the HTTP server's handlers).
    func upgrade(
        channel: any Channel,
        upgradeRequest: HTTPRequestHead,
        position: ChannelPipeline.SynchronousOperations.Position
    ) -> EventLoopFuture<SwitchboardUpgradeResult> {
        if case .plain(let configuration, let assigns, let makeSession) = decision.value {
            return channel.eventLoop.makeCompletedFuture {
                try WebSocketConnection.install(
                    on: channel,
                    format: configuration.format,
                    maxMessageSize: configuration.maxMessageSize,
                    idleTimeout: configuration.idleTimeout,
                    pingInterval: configuration.pingInterval,
                    maxQueuedBytes: configuration.maxQueuedBytes,
                    position: position,
                    logger: logger
                ) { handler in
                    makeSession(handler, WebSocketConnection.connection(channel: channel, socketID: nil, assigns: assigns, transport: "websocket"))
                }
                return .webSocket
            }
        }
        return channel.eventLoop.makeCompletedFuture {
            guard case .accepted(let socket, let serializer, let id, let assigns) = decision.value else {
                throw UpgradeRefused()
            }
            let configuration = socket.configuration
            let logger = self.logger
            try WebSocketConnection.install(
                on: channel,
                format: serializer == .v1 ? .phoenixV1WebSocket : .phoenixV2WebSocket,
                maxMessageSize: configuration.maxMessageSize,
                idleTimeout: configuration.idleTimeout,
                maxQueuedBytes: configuration.maxQueuedBytes,
                position: position,
                logger: logger
            ) { handler in
                let connection = WebSocketConnection.connection(channel: channel, socketID: id, assigns: assigns, transport: "websocket")
                return PhoenixSession(socket: socket, transport: handler, serializer: serializer, connection: connection, logger: logger)
            }
            return .webSocket
        }
    }
}
