import Hummingbird
import Logging
import ServiceLifecycle
import Switchboard
import SwitchboardHummingbird
import SwitchboardRedis

/// The no-configuration server: the Phoenix socket at `/socket` with the demo channels.
enum DemoServer {
    /// - Parameter redis: joins other nodes through Redis when given; one in-memory node otherwise.
    static func makeApplication(host: String, port: Int, apiKey: String, redis: RedisBroker? = nil, logger: Logger) -> some ApplicationProtocol {
        let hub = redis.map { Hub(nodeID: $0.nodeID, broker: $0, logger: logger) } ?? Hub(logger: logger)
        redis?.countSubscribers(of: hub)
        var socket = PhoenixSocket(hub: hub) { request in
            var assigns = Assigns()
            if let user = request.params["user_id"], !user.isEmpty {
                assigns["user_id"] = user
                return .accept(id: "user_socket:\(user)", assigns: assigns)
            }
            return .accept(assigns: assigns)
        }
        socket.channel(DashboardChannel.topic, DashboardChannel(apiKey: apiKey))  // first: a config's `*` route would take it
        socket.channel("room:*", RoomChannel())
        socket.channel("ticker", TickerChannel())
        socket.channel("notifications:*", NotificationsChannel())
        socket.channel("realtime:*", RealtimeChannel())
        socket.channel("public:*", PublicChannel())
        socket.channel("online", OnlineChannel())

        // Plain WebSocket channels (no envelope), on the same hub.
        let plainChannels = Router(context: PlainUpgradeContext.self)
        var subscriberConfiguration = PlainChannelConfiguration()
        subscriberConfiguration.chooseFormat = { $0.query["format"] == "envelope" ? .plainEnvelope : .plainPayload }
        plainChannels.plainChannel("/ws/{topic}", channel: hub.plainChannel("ws"), configuration: subscriberConfiguration, handler: TopicSubscriberChannel())
        var chatConfiguration = PlainChannelConfiguration()
        chatConfiguration.format = PlainChatChannel.format
        plainChannels.plainChannel("/chat/{room}", channel: hub.plainChannel("room"), configuration: chatConfiguration, handler: PlainChatChannel())
        plainChannels.plainChannel("/greet/{user}", channel: hub.plainChannel("greet"), handler: GreetingChannel())

        let router = Router()
        addTodoRoutes(to: router, plainChannels: plainChannels, hub: hub)
        WebAssets.load(logger: logger).register(on: router)  // the demo page at /, /switchboard.js
        router.get("/health") { _, _ in HTTPResponse.Status.ok }
        MetricsEndpoint.register(on: router, apiKey: apiKey)
        var api = HubAPI(hub: hub, apiKey: apiKey)
        if let redis { api.clusterCounts = { try await redis.clusterSubscriberCounts() } }
        api.register(on: router)
        var services: [any Service] = [TickerService(hub: hub), DashboardService(hub: hub, recentErrors: RecentErrorsLogHandler.recentErrors(of: logger))]
        if let redis { services.append(redis) }
        return Application(
            router: router,
            server: .switchboard(sockets: ["/socket": socket], eventStreams: ["/events": socket], plainChannels: plainChannels),
            configuration: .init(address: .hostname(host, port: port), serverName: "switchboard"),
            services: services,
            logger: logger
        )
    }
}
