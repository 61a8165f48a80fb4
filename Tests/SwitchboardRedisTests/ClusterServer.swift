import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import Switchboard
import SwitchboardHummingbird
import SwitchboardRedis
import SwitchboardTestSupport

/// A room where `shout` goes to everyone (sender included) and `shout_from` to everyone else.
struct ShoutChannel: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        .ok()
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        switch event {
        case "shout":
            socket.broadcast("shout", payload)
            return .ok()
        case "shout_from":
            socket.broadcastFrom("shout_from", payload)
            return .ok()
        default:
            return .error(reason: "unknown event")
        }
    }
}

/// A real switchboard server node on 127.0.0.1 (a free port) with a RedisBroker, run in its own
/// service group so a test can stop one node and keep the others.
final class ClusterServer: Sendable {
    let port: Int
    let node: Node
    let group: ServiceGroup
    static let apiKey = "cluster-key"

    private init(port: Int, node: Node, group: ServiceGroup) {
        self.port = port
        self.node = node
        self.group = group
    }

    /// Starts `count` nodes on one Redis, runs `body`, and shuts every node down afterwards.
    static func run(count: Int, redisPort: Int, _ body: ([ClusterServer]) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            var servers: [ClusterServer] = []
            do {
                for index in 0..<count {
                    let node = Node(port: redisPort, name: "node\(index)")
                    var socket = PhoenixSocket(hub: node.hub) { _ in .accept(assigns: Assigns()) }
                    socket.channel("room:*", ShoutChannel())
                    var logger = Logger(label: "cluster.node\(index)")
                    logger.logLevel = .error
                    let router = Router()
                    var api = HubAPI(hub: node.hub, apiKey: apiKey)
                    let broker = node.broker
                    api.clusterCounts = { try await broker.clusterSubscriberCounts() }
                    api.register(on: router)
                    let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
                    let app = Application(
                        router: router,
                        server: .switchboard(sockets: ["/socket": socket]),
                        configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                        onServerRunning: { channel in
                            portContinuation.yield(channel.localAddress?.port ?? 0)
                            portContinuation.finish()
                        },
                        logger: logger
                    )
                    let group = ServiceGroup(configuration: .init(services: [app, node.broker], gracefulShutdownSignals: [], logger: logger))
                    tasks.addTask { try await group.run() }
                    var iterator = ports.makeAsyncIterator()
                    guard let port = await iterator.next(), port != 0 else { throw TestFailure("node \(index) did not start") }
                    servers.append(ClusterServer(port: port, node: node, group: group))
                }
                try await body(servers)
            } catch {
                for server in servers { await server.group.triggerGracefulShutdown() }
                tasks.cancelAll()
                throw error
            }
            for server in servers { await server.group.triggerGracefulShutdown() }
            try await tasks.waitForAll()
        }
    }

    /// A Phoenix V2 WebSocket client joined to `topic` on this node.
    func join(_ topic: String) async throws -> TestWebSocket {
        let socket = try await TestWebSocket.connect(port: port, path: "/socket/websocket?vsn=2.0.0")
        try await socket.send(json: ["1", "1", .string(topic), "phx_join", .emptyObject])
        let reply = try await socket.receiveJSON()
        guard reply.arrayValue?[3] == "phx_reply", reply.arrayValue?[4]["status"] == "ok" else { throw TestFailure("join refused: \(reply)") }
        return socket
    }

    /// `GET path` on the HTTP API; the JSON body.
    func apiGet(_ path: String) async throws -> JSONValue {
        let collector = ResponseCollector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(Self.apiKey)\r\nConnection: close\r\n\r\n"
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        try await channel.closeFuture.get()
        let text = collector.text.withLockedValue { $0 }
        guard let split = text.range(of: "\r\n\r\n") else { throw TestFailure("no HTTP response") }
        return try JSONParser.parse(String(text[split.upperBound...]))
    }
}

/// Collects a whole HTTP response as text.
final class ResponseCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let text = NIOLockedValueBox("")

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        text.withLockedValue { $0 += String(buffer: buffer) }
    }
}
