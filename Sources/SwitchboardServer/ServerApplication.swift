import Hummingbird
import Logging
import ServiceLifecycle
import Switchboard
import SwitchboardHummingbird
import SwitchboardRedis

/// The `switchboard` server's composition root, configured or not: the Phoenix socket at
/// `/socket` (WebSocket, long-poll) and `/events` (SSE) with one channel per namespace, the plain
/// WebSocket routes, the HTTP API, the dashboard, metrics and the demo page.
enum ServerApplication {
    /// - Parameters:
    ///   - redis: joins other nodes through Redis when given; one in-memory node otherwise.
    ///   - access: namespaces, JWT verification and allowed origins (`.builtIn`: the demo's rules).
    ///   - webhooks: receivers of the presence lifecycle events.
    static func makeApplication(
        host: String,
        port: Int,
        apiKey: String,
        redis: RedisBroker? = nil,
        access: ServerAccess = .builtIn,
        webhooks: [Webhook] = [],
        logger: Logger
    ) -> some ApplicationProtocol {
        let presence = access.presenceConfiguration
        let history = access.historyConfiguration
        let hub =
            redis.map { Hub(nodeID: $0.nodeID, broker: $0, presence: presence, history: history, logger: logger) }
            ?? Hub(presence: presence, history: history, logger: logger)
        redis?.countSubscribers(of: hub)
        redis?.replicatePresence(of: hub)
        // Connect: JWT (or the demo's user_id param); topics: one channel per namespace (built in:
        // room:*, ticker, notifications:*, realtime:*, public:*, online). See ServerAccess.
        var socket = PhoenixSocket(hub: hub) { await access.connect($0) }
        socket.configuration.checkOrigin = access.originPolicy
        socket.channel(DashboardChannel.topic, DashboardChannel(apiKey: apiKey))  // first: a config's `*` route would take it
        access.registerChannels(on: &socket)

        // Plain WebSocket channels (no envelope), on the same hub.
        let plainChannels = Router(context: PlainUpgradeContext.self)
        var subscriberConfiguration = PlainChannelConfiguration()
        subscriberConfiguration.chooseFormat = { $0.params["format"] == "envelope" ? .plainEnvelope : .plainPayload }
        subscriberConfiguration.checkOrigin = access.originPolicy
        plainChannels.plainChannel(
            "/ws/{topic}",
            channel: hub.plainChannel("ws"),
            configuration: subscriberConfiguration,
            handler: TopicSubscriberChannel(access: access)
        )
        var chatConfiguration = PlainChannelConfiguration()
        chatConfiguration.checkOrigin = access.originPolicy
        chatConfiguration.format = PlainChatChannel.format
        plainChannels.plainChannel("/chat/{room}", channel: hub.plainChannel("room"), configuration: chatConfiguration, handler: PlainChatChannel())

        let router = Router()
        WebAssets.load(logger: logger).register(on: router)  // the demo page at /, /switchboard.js
        router.get("/health") { _, _ in HTTPResponse.Status.ok }
        MetricsEndpoint.register(on: router, apiKey: apiKey)
        var api = HubAPI(hub: hub, apiKey: apiKey)
        if let redis { api.clusterCounts = { try await redis.clusterSubscriberCounts() } }
        api.validateTopic = { topic in
            guard access.validatePublish(topic: topic) else {
                throw APIError(.unprocessableContent, "unknown_namespace", "topic \(topic) is in no namespace")
            }
        }
        api.register(on: router)
        var services: [any Service] = [
            TickerService(hub: hub), DashboardService(hub: hub, recentErrors: RecentErrorsLogHandler.recentErrors(of: logger)),
        ]
        if let redis { services.append(redis) }
        if !webhooks.isEmpty {
            services.append(
                WebhookService(hub: hub, webhooks: webhooks, namespaceOf: { access.namespaces.namespace(of: $0)?.pattern }, logger: logger)
            )
        }
        return Application(
            router: router,
            server: .switchboard(sockets: ["/socket": socket], eventStreams: ["/events": socket], plainChannels: plainChannels, api: api),
            configuration: .init(address: .hostname(host, port: port), serverName: "switchboard"),
            services: services,
            logger: logger
        )
    }
}
