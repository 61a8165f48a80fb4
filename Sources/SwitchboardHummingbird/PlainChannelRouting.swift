import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Switchboard
import SwitchboardTransports
import Synchronization

/// Limits for the connections of a plain channel route.
public struct PlainChannelConfiguration: Sendable {
    /// The form in which broadcasts reach these clients: the bare payload (default), an
    /// `{"event","payload"}` envelope, or your own (`FrameFormat.plainJSON`).
    public var format: FrameFormat = .plainPayload
    /// Picks the format per client from its request instead (e.g. a `?format=` query option).
    public var chooseFormat: (@Sendable (ConnectRequest) -> FrameFormat)?
    /// Close a connection that sent nothing, not even a pong or a ping, for this long.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// Ping a client after this long without reading anything from it, and again after each
    /// further interval without an answer (nil: never). A client that answers pings, as every
    /// browser does, stays connected however quiet it and its topic are. Pings go out at most
    /// half the idle timeout apart.
    public var pingInterval: TimeAmount? = .seconds(25)
    /// Largest inbound message in bytes.
    public var maxMessageSize: Int = 1 << 20
    /// Most bytes queued for a client that does not read; past it the client is disconnected.
    public var maxQueuedBytes: Int = 1 << 20
    /// Browser origins allowed to connect (refused with 403 before the upgrade). Default: any.
    public var checkOrigin: OriginPolicy = .any
    /// Most messages waiting for one client's callbacks; past it the connection is closed (1008).
    public var maxPendingMessages: Int = 1000
    /// Also serve the route to Server-Sent Events clients (`GET` with `Accept: text/event-stream`):
    /// they are clients like the others, that only listen.
    public var eventStreams = true
    /// How broadcasts reach Server-Sent Events clients (encoded once per broadcast): by default
    /// `event: <event>`, `data: <payload>` (the default event name `message` fires `onmessage`).
    public var eventStreamFormat: FrameFormat = .serverSentEvents
    /// Keep-alive comment interval and reconnection hint for Server-Sent Events clients.
    public var eventStreamKeepAlive: TimeAmount = .seconds(15)
    public var eventStreamRetry: TimeAmount = .seconds(2)

    public init() {}
}

/// The request context of the router that decides plain WebSocket upgrades. Routes are ordinary
/// Hummingbird routes (groups, URL variables, middleware); `plainChannel` routes record their
/// decision here instead of answering.
public struct PlainUpgradeContext: RequestContext {
    public struct Source: RequestContextSource, Sendable {
        public let logger: Logger
        let decision: PlainUpgradeDecisionBox
        let peerAddress: String?
    }

    public var coreContext: CoreRequestContextStorage
    let decision: PlainUpgradeDecisionBox
    let peerAddress: String?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.decision = source.decision
        self.peerAddress = source.peerAddress
    }
}

final class PlainUpgradeDecisionBox: Sendable {
    let value = Mutex<UpgradeDecision?>(nil)
}

extension RouterMethods where Context == PlainUpgradeContext {
    /// Serves a plain WebSocket channel at `path` (which may hold variables, e.g. `/ws/{token}`).
    @discardableResult
    public func plainChannel<Handler: PlainChannelHandler>(
        _ path: RouterPath,
        channel: PlainChannel,
        configuration: PlainChannelConfiguration = .init(),
        handler: Handler
    ) -> Self {
        get(path) { request, context -> Response in
            var built = ConnectRequest(
                uri: request.uri.description,
                headers: request.headers.map { (name: $0.name.canonicalName, value: $0.value) },
                peerAddress: context.peerAddress
            )
            for (key, value) in context.parameters { built.parameters[String(key)] = String(value) }
            let connectRequest = built
            let decision: UpgradeDecision
            switch await handler.accept(connectRequest, channel: channel, checkOrigin: configuration.checkOrigin) {
            case .refuse(let status, let reason):
                decision = .refused(ConnectRefusal(status: status, reason: reason))
            case .accept(let clientContext):
                let logger = context.logger
                decision = .plain(configuration, assigns: PlainChannel.assigns(for: clientContext)) { transport, connection in
                    let format =
                        transport.isUnidirectional
                        ? configuration.eventStreamFormat : configuration.chooseFormat?(connectRequest) ?? configuration.format
                    return handler.makeSession(
                        context: clientContext,
                        request: connectRequest,
                        channel: channel,
                        transport: transport,
                        connection: connection,
                        format: format,
                        maxPendingMessages: configuration.maxPendingMessages,
                        logger: logger
                    )
                }
            }
            context.decision.value.withLock { $0 = decision }
            return Response(status: .ok)
        }
        return self
    }
}
