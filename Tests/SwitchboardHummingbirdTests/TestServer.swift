import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import Switchboard
import SwitchboardHummingbird
import SwitchboardTestSupport
import Synchronization

/// Records what channel callbacks saw, for assertions.
final class CallbackLog: Sendable {
    private let entries = Mutex<[String]>([])
    func append(_ entry: String) { entries.withLock { $0.append(entry) } }
    var all: [String] { entries.withLock { $0 } }

    /// Weak references to connections seen by channels: once clients close, every one of them must
    /// be freed (a reference cycle anywhere in a session keeps its connection alive).
    private final class WeakConnection: @unchecked Sendable {
        // @unchecked: written once at init; `weak` reads are atomic in Swift.
        weak var connection: Connection?
        init(_ connection: Connection) { self.connection = connection }
    }
    private let tracked = Mutex<[WeakConnection]>([])
    func track(_ connection: Connection) { tracked.withLock { $0.append(WeakConnection(connection)) } }
    var trackedCount: Int { tracked.withLock { $0.count } }
    var aliveTrackedConnections: Int { tracked.withLock { $0.filter { $0.connection != nil }.count } }
}

/// The channel the transport tests exercise: one event per feature.
struct TestChannel: TopicChannel {
    let log: CallbackLog

    var intercepts: Set<String> { ["rewritten", "filtered"] }

    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        log.append("join \(topic)")
        log.track(socket.connection)
        if payload["crash"] != nil { throw TestFailure("join crash requested") }
        if let room = payload["room"]?.stringValue { socket.joinRoom(room) }
        if let reason = payload["refuse"]?.stringValue { return .refuse(reason) }
        socket.push("welcome", ["topic": .string(topic)])  // queued until after the join reply
        return .ok(["joined": .string(topic)])
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        log.append("in \(socket.topic) \(event)")
        switch event {
        case "ping": return .reply(status: "ok", response: payload)
        case "boom": throw TestFailure("boom")
        case "push_me":
            socket.push("pushed", payload)
            return .ok()
        case "broadcast":
            socket.broadcast("shout", payload)
            return .noReply
        case "broadcast_from":
            socket.broadcastFrom("shout", payload)
            return .noReply
        case "stop": return .stop(reply: (status: "ok", response: .json(["bye": true])))
        case "custom_status": return .reply(status: "queued", response: .json(.emptyObject))
        case "join_room":
            socket.joinRoom(payload["room"]?.stringValue ?? "")
            return .ok()
        case "leave_room":
            socket.leaveRoom(payload["room"]?.stringValue ?? "")
            return .ok()
        case "mute":
            socket.assigns["muted"] = true
            return .ok()
        case "whoami":
            let user: String? = socket.assigns["user"]
            return .ok(["user": user.map { .string($0) } ?? .null, "socket_id": socket.socketID.map { .string($0) } ?? .null])
        case "count":
            let n: Int = (socket.assigns["n"] ?? 0) + 1
            socket.assigns["n"] = n
            return .ok(["n": .int(Int64(n))])
        case "slow":
            try await Task.sleep(for: .milliseconds(200))
            return .ok(["slow": true])
        default:
            if case .binary(let bytes) = payload {
                return .reply(status: "ok", response: .binary(bytes))
            }
            return .error(reason: "unknown event")
        }
    }

    func handleOut(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleOutResult {
        if event == "filtered", (socket.assigns["muted"] as Bool?) == true { return .skip }
        guard case .json(.object(var members)) = payload else { return .push(payload) }
        members["editable"] = true
        return .push(.json(.object(members)))
    }

    func terminate(reason: TerminateReason, socket: ChannelSocket) async {
        if socket.topic.hasSuffix(":hang") {
            try? await Task.sleep(for: .seconds(30))  // a terminate that does not return in time
        }
        log.append("terminate \(socket.topic) \(reason)")
    }
}

/// A running Hummingbird app with a Phoenix socket at `/socket`, on a free port.
struct TestServer {
    let port: Int
    let hub: Hub
    let log: CallbackLog

    static let apiKey = "test-key"

    /// The WebSocket path with query parameters.
    func path(_ query: String = "vsn=2.0.0") -> String { "/socket/websocket?\(query)" }

    func connect(_ query: String = "vsn=2.0.0", headers: [(String, String)] = []) async throws -> TestWebSocket {
        try await TestWebSocket.connect(port: port, path: path(query), headers: headers)
    }

    /// Starts a server, runs `body`, and stops the server (also when `body` throws).
    /// `onLoopPublish`: `POST /api/broadcast` is answered on the event loop (`.switchboard(api:)`,
    /// as the standalone server does); false: by the API's Hummingbird route.
    static func run(
        configuration: PhoenixSocket.Configuration = .init(),
        plainPingInterval: TimeAmount? = .seconds(25),
        onLoopPublish: Bool = true,
        http1: HTTP1Channel.Configuration = .init(),
        _ body: @Sendable (TestServer) async throws -> Void
    ) async throws {
        let hub = Hub()
        let log = CallbackLog()
        var socket = PhoenixSocket(hub: hub, configuration: configuration) { request in
            if request.params["deny"] != nil { return .refuse(status: 403, reason: "denied by test") }
            if let token = request.authToken, token != "tok" { return .refuse() }
            var assigns = Assigns()
            if let user = request.params["user"] {
                assigns["user"] = user
                return .accept(id: "user_socket:\(user)", assigns: assigns)
            }
            if let token = request.authToken { assigns["user"] = "token:\(token)" }
            return .accept(assigns: assigns)
        }
        socket.channel("room:*", TestChannel(log: log))
        socket.channel("exact", TestChannel(log: log))
        socket.channel("test:*", TestChannel(log: log))

        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let router = Router()
        var api = HubAPI(hub: hub, apiKey: TestServer.apiKey)
        api.maxBodySize = 64 * 1024
        api.register(on: router)
        let plainChannels = Router(context: PlainUpgradeContext.self)
        var plainConfiguration = PlainChannelConfiguration()
        plainConfiguration.idleTimeout = configuration.idleTimeout
        plainConfiguration.pingInterval = plainPingInterval
        plainConfiguration.maxQueuedBytes = configuration.maxQueuedBytes
        plainConfiguration.maxMessageSize = configuration.maxMessageSize
        plainChannels.group("plain").plainChannel(
            "{room}/socket/{user}",
            channel: hub.plainChannel("test"),
            configuration: plainConfiguration,
            handler: TestPlainChannel(log: log)
        )
        let app = Application(
            router: router,
            server: .switchboard(
                sockets: ["/socket": socket],
                eventStreams: ["/events": socket],
                plainChannels: plainChannels,
                api: onLoopPublish ? api : nil,
                http1: http1
            ),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw TestFailure("server did not start") }
            do {
                try await body(TestServer(port: port, hub: hub, log: log))
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}

/// Polls `condition` every 10 ms until true or `timeout` passes.
func eventually(timeout: Duration = .seconds(5), _ condition: @Sendable () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return await condition()
}

/// The plain channel the transport tests exercise, at `/plain/{room}/socket/{user}`.
struct TestPlainChannel: PlainChannelHandler {
    let log: CallbackLog
    struct Client: Sendable {
        let user: String
        let room: String
    }
    struct Command: Decodable {
        let op: String
        let room: String?
        let text: String?
    }

    func connect(_ request: ConnectRequest, channel: PlainChannel) async throws -> PlainConnectResult<Client> {
        let user = request.parameters["user"] ?? ""
        if user == "mallory" { return .refuse(status: 401, reason: "not you") }
        return .accept(Client(user: user, room: request.parameters["room"] ?? ""))
    }

    func connected(_ client: PlainClient<Client>) async throws {
        log.append("plain connected \(client.context.user)")
        log.track(client.connection)
        client.join(room: client.context.room)
        client.send(json: ["hello": .string(client.context.user), "room": .string(client.context.room)])
    }

    func message(_ message: PlainMessage, from client: PlainClient<Client>) async throws {
        let command = try message.decode(as: Command.self)
        switch command.op {
        case "echo": client.send(json: ["echo": .string(command.text ?? "")])
        case "say": client.broadcast(json: ["from": .string(client.context.user), "text": .string(command.text ?? "")], toRoom: client.context.room)
        case "say_others":
            client.broadcast(
                json: ["from": .string(client.context.user), "text": .string(command.text ?? "")],
                toRoom: client.context.room,
                includingSelf: false
            )
        case "join": client.join(room: command.room ?? "")
        case "leave": client.leave(room: command.room ?? "")
        case "members":
            let users = client.channel.connections(inRoom: command.room ?? client.context.room).count
            client.send(json: ["members": .int(Int64(users))])
        case "bye": client.close(code: 4000, reason: "bye")
        default: throw PlainMessageError(code: "unknown_op", "unknown op \(command.op)")
        }
    }

    func disconnected(_ client: PlainClient<Client>) async {
        log.append("plain disconnected \(client.context.user)")
    }
}
