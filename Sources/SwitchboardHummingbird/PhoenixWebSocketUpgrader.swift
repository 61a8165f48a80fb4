import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import HTTPTypes
import Hummingbird
import NIOWebSocket
import Switchboard

/// What happened to an HTTP connection's first request.
enum SwitchboardUpgradeResult: Sendable {
    /// Upgraded to a Phoenix WebSocket; NIO handlers own the connection from now on.
    case webSocket
    /// An ordinary HTTP request (or an upgrade to a path we do not serve): Hummingbird answers it.
    case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
    /// An upgrade we refused (connect handler, vsn): answer with this status and reason.
    case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, status: Int, reason: String?)
    /// The first request opened a Server-Sent Events stream; its handler owns the connection.
    case eventStream
}

/// The decision taken while building the upgrade response, used when installing the handlers.
enum UpgradeDecision: Sendable {
    case accepted(socket: PhoenixSocket, serializer: PhoenixSerializer, id: String?, assigns: Assigns)
    case plain(PlainChannelConfiguration, assigns: Assigns, makeSession: @Sendable (any PhoenixTransport, Connection) -> any WebSocketSessionDelegate)
    case refused(status: Int, reason: String?)
}

extension UpgradeDecision {
    /// The body of a refused upgrade's answer: `{"error": reason}`, or none without a reason.
    static func refusalBody(reason: String?) -> JSONValue? {
        reason.map { ["error": .string($0)] }
    }
}

struct UpgradeRefused: Error {}
struct NotASocketPath: Error {}

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

    func buildUpgradeResponse(channel: any Channel, upgradeRequest head: HTTPRequestHead, initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        let loop = channel.eventLoop
        let (path, query) = QueryString.split(uri: head.uri)
        guard let socket = sockets.first(where: { $0.path + "/websocket" == path })?.socket else {
            return buildPlainUpgradeResponse(channel: channel, head: head, initialResponseHeaders: initialResponseHeaders)
        }
        guard head.method == .GET,
            let key = head.headers.first(name: "Sec-WebSocket-Key"),
            head.headers.first(name: "Sec-WebSocket-Version") == "13"
        else {
            decision.value = .refused(status: 400, reason: "invalid WebSocket upgrade request")
            return loop.makeFailedFuture(UpgradeRefused())
        }
        // The origin check comes first, as in Phoenix.
        guard socket.configuration.checkOrigin.allows(origin: head.headers.first(name: "Origin")) else {
            logger.debug("refused connection: origin not allowed", metadata: ["origin": "\(head.headers.first(name: "Origin") ?? "")"])
            decision.value = .refused(status: 403, reason: "origin not allowed")
            return loop.makeFailedFuture(UpgradeRefused())
        }
        let items = QueryString.parse(query)
        var params: [String: String] = [:]
        for item in items { params[item.name] = item.value }
        guard let serializer = PhoenixSerializer.negotiate(vsn: params["vsn"]) else {
            logger.debug("refused connection: unsupported vsn", metadata: ["vsn": "\(params["vsn"] ?? "")"])
            decision.value = .refused(status: 403, reason: "unsupported vsn")
            return loop.makeFailedFuture(UpgradeRefused())
        }
        // Subprotocols: phoenix.js's authToken travels as `base64url.bearer.phx.<token>` beside `phoenix`.
        let offered = head.headers["Sec-WebSocket-Protocol"]
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        var authToken: String?
        for value in offered where value.hasPrefix("base64url.bearer.phx.") {
            authToken = Self.decodeLenientBase64(String(value.dropFirst("base64url.bearer.phx.".count)))
        }
        let request = ConnectRequest(
            params: params,
            queryItems: items,
            headers: head.headers.map { (name: $0.name.lowercased(), value: $0.value) },
            peerAddress: Self.peerAddress(channel),
            path: path,
            authToken: authToken
        )
        let promise = loop.makePromise(of: ConnectResult.self)
        promise.completeWithTask { await socket.accept(request) }
        let decision = self.decision
        return promise.futureResult.flatMapThrowing { result in
            switch result {
            case .accept(let id, let assigns):
                decision.value = .accepted(socket: socket, serializer: serializer, id: id, assigns: assigns)
                var headers = initialResponseHeaders
                headers.add(name: "Sec-WebSocket-Accept", value: Self.acceptValue(for: key))
                if offered.contains("phoenix") {
                    headers.add(name: "Sec-WebSocket-Protocol", value: "phoenix")
                }
                return headers
            case .refuse(let status, let reason):
                decision.value = .refused(status: status, reason: reason)
                throw UpgradeRefused()
            }
        }
    }

    /// Asks the plain-channel router about a path that is not a Phoenix socket.
    private func buildPlainUpgradeResponse(channel: any Channel, head: HTTPRequestHead, initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        let loop = channel.eventLoop
        // NIO's upgrade handler does not hand a request it tried to upgrade on to the HTTP
        // pipeline, so every upgrade we do not take is answered here (404, 400, or the refusal).
        let notFound = { () -> EventLoopFuture<HTTPHeaders> in
            self.decision.value = .refused(status: 404, reason: "no WebSocket endpoint at this path")
            return loop.makeFailedFuture(NotASocketPath())
        }
        guard let plainResponder, let request = try? HTTPRequest(head, secure: false, splitCookie: false) else {
            return notFound()
        }
        guard head.method == .GET, let key = head.headers.first(name: "Sec-WebSocket-Key"), head.headers.first(name: "Sec-WebSocket-Version") == "13" else {
            decision.value = .refused(status: 400, reason: "invalid WebSocket upgrade request")
            return loop.makeFailedFuture(UpgradeRefused())
        }
        let box = PlainUpgradeDecisionBox()
        let source = PlainUpgradeContext.Source(logger: logger, decision: box, peerAddress: Self.peerAddress(channel))
        let promise = loop.makePromise(of: PlainUpgradeDecision?.self)
        promise.completeWithTask {
            _ = try? await plainResponder(Request(head: request, body: .init(buffer: ByteBuffer())), PlainUpgradeContext(source: source))
            return box.value.withLock { $0 }
        }
        let decision = self.decision
        return promise.futureResult.flatMapThrowing { plain in
            switch plain {
            case .none:
                decision.value = .refused(status: 404, reason: "no WebSocket endpoint at this path")
                throw NotASocketPath()
            case .refuse(let status, let reason):
                decision.value = .refused(status: status, reason: reason)
                throw UpgradeRefused()
            case .accept(let configuration, let assigns, let makeSession):
                decision.value = .plain(configuration, assigns: assigns, makeSession: makeSession)
                var headers = initialResponseHeaders
                headers.add(name: "Sec-WebSocket-Accept", value: Self.acceptValue(for: key))
                return headers
            }
        }
    }

    func upgrade(channel: any Channel, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<SwitchboardUpgradeResult> {
        upgrade(channel: channel, upgradeRequest: upgradeRequest, position: .last)
    }

    /// Installs the WebSocket handlers at `position` (the request router upgrades a later request
    /// of a kept-alive connection in front of the HTTP server's handlers).
    func upgrade(channel: any Channel, upgradeRequest: HTTPRequestHead, position: ChannelPipeline.SynchronousOperations.Position) -> EventLoopFuture<SwitchboardUpgradeResult> {
        if case .plain(let configuration, let assigns, let makeSession) = decision.value {
            return channel.eventLoop.makeCompletedFuture {
                try installHandlers(
                    channel: channel,
                    format: configuration.format,
                    maxMessageSize: configuration.maxMessageSize,
                    idleTimeout: configuration.idleTimeout,
                    pingInterval: configuration.pingInterval,
                    maxQueuedBytes: configuration.maxQueuedBytes,
                    position: position
                ) { handler in
                    makeSession(handler, Self.connection(channel: channel, socketID: nil, assigns: assigns, transport: "websocket"))
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
            try installHandlers(
                channel: channel,
                format: serializer == .v1 ? .phoenixV1WebSocket : .phoenixV2WebSocket,
                maxMessageSize: configuration.maxMessageSize,
                idleTimeout: configuration.idleTimeout,
                maxQueuedBytes: configuration.maxQueuedBytes,
                position: position
            ) { handler in
                let connection = Self.connection(channel: channel, socketID: id, assigns: assigns, transport: "websocket")
                return PhoenixSession(socket: socket, transport: handler, serializer: serializer, connection: connection, logger: logger)
            }
            return .webSocket
        }
    }

    /// Installs the frame decoder and the connection handler (which keeps the idle timer); sets the outbound limit.
    private func installHandlers(
        channel: any Channel,
        format: FrameFormat,
        maxMessageSize: Int,
        idleTimeout: TimeAmount,
        pingInterval: TimeAmount? = nil,
        maxQueuedBytes: Int,
        position: ChannelPipeline.SynchronousOperations.Position = .last,
        makeSession: @escaping (WebSocketConnectionHandler) -> any WebSocketSessionDelegate
    ) throws {
        let decoder = ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxMessageSize))
        try channel.pipeline.syncOperations.addHandler(decoder, position: position)
        let handler = WebSocketConnectionHandler(eventLoop: channel.eventLoop, broadcastFormat: format, maxMessageSize: maxMessageSize, idleTimeout: idleTimeout, pingInterval: pingInterval, logger: logger, makeSession: makeSession)
        try channel.pipeline.syncOperations.addHandler(handler, position: .after(decoder))
        let high = max(maxQueuedBytes, 1024)
        try channel.syncOptions?.setOption(ChannelOptions.writeBufferWaterMark, value: .init(low: high / 2, high: high))
    }

    /// A connection whose `close` reaches the channel's handler.
    static func connection(channel: any Channel, socketID: String?, assigns: Assigns, transport: String) -> Connection {
        Connection(socketID: socketID, assigns: assigns, transport: transport) { reason in
            // Looked up rather than captured: the handler owns the connection, not the other way round.
            channel.pipeline.handler(type: WebSocketConnectionHandler.self).whenSuccess { $0.close(reason) }
        }
    }

    /// The peer's `address:port`, for connect handlers.
    static func peerAddress(_ channel: any Channel) -> String? {
        channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" }
    }

    /// `Sec-WebSocket-Accept` for a client key (RFC 6455 §4.2.2).
    static func acceptValue(for key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
        return Data(digest).base64EncodedString()
    }

    /// Decodes base64 in either alphabet, padded or not.
    static func decodeLenientBase64(_ text: String) -> String? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        guard let data = Data(base64Encoded: s) else { return nil }
        return String(data: data, encoding: .utf8)
    }
}

/// Query-string helpers.
enum QueryString {
    /// Splits a request URI into its path and query.
    static func split(uri: String) -> (path: String, query: String) {
        guard let q = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<q]), String(uri[uri.index(after: q)...]))
    }

    /// Parses `a=1&b=2` into ordered, percent-decoded pairs (`+` is a space; empty segments skipped).
    static func parse(_ query: String) -> [(name: String, value: String)] {
        query.split(separator: "&").compactMap { segment in
            let parts = segment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let rawName = parts.first, !rawName.isEmpty else { return nil }
            func decode(_ s: Substring) -> String {
                let spaced = s.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            return (decode(rawName), parts.count > 1 ? decode(parts[1]) : "")
        }
    }
}
