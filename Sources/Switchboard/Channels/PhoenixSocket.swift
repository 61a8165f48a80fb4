import NIOCore

/// A Phoenix socket: how connections are accepted, which channel serves which topic, and limits.
///
/// ```swift
/// var socket = PhoenixSocket(hub: hub) { request in
///     guard let user = request.params["user"] else { return .refuse() }
///     var assigns = Assigns()
///     assigns["user"] = user
///     return .accept(id: "user_socket:\(user)", assigns: assigns)
/// }
/// socket.channel("room:*", RoomChannel())
/// ```
public struct PhoenixSocket: Sendable {
    /// Limits and timeouts for the connections of this socket.
    public struct Configuration: Sendable {
        /// Most channels one connection may have joined at once (Phoenix: 100).
        public var maxChannels: Int = 100
        /// Close a connection that sent nothing (not even a ping) for this long (Phoenix: 60 s).
        public var idleTimeout: TimeAmount = .seconds(60)
        /// Largest inbound message (after reassembling fragments), in bytes.
        public var maxMessageSize: Int = 1 << 20
        /// Most bytes queued for a connection that does not read; past it the connection is closed
        /// as a slow consumer (1008).
        public var maxQueuedBytes: Int = 1 << 20
        /// Browser origins allowed to connect (refused with 403 before the upgrade). Default: any.
        public var checkOrigin: OriginPolicy = .any
        /// Most messages waiting for one channel's callbacks (inbound events, intercepted and room
        /// broadcasts); past it the connection is closed (1008), so a client cannot queue work
        /// faster than its channel handles it and grow memory without bound.
        public var maxPendingMessages: Int = 1000
        /// How long a rejoin of a topic waits for the previous instance's `terminate` (Phoenix: 5 s).
        public var terminateTimeout: TimeAmount = .seconds(5)
        /// Server-Sent Events: how often an idle stream gets a keep-alive comment.
        public var eventStreamKeepAlive: TimeAmount = .seconds(15)
        /// Server-Sent Events: the reconnection delay suggested to `EventSource` (`retry:`).
        public var eventStreamRetry: TimeAmount = .seconds(2)
        /// Serve phoenix.js's long-poll transport at `{mount}/longpoll`.
        public var longPoll = true
        /// Long-poll: how long a poll waits for a message before `204` (Phoenix: 10 s). A session
        /// ends when no poll arrived for 1.5 times this.
        public var longPollWindow: TimeAmount = .seconds(10)

        public init() {}
    }

    /// A topic route: an exact topic, or a prefix ending in `*`.
    struct Route: Sendable {
        let pattern: String
        let channel: any TopicChannel

        func matches(_ topic: String) -> Bool {
            if pattern.hasSuffix("*") {
                return topic.hasPrefix(pattern.dropLast())
            }
            return topic == pattern
        }
    }

    public let hub: Hub
    public var configuration: Configuration
    let connect: @Sendable (ConnectRequest) async throws -> ConnectResult
    var routes: [Route] = []

    /// - Parameters:
    ///   - hub: the hub broadcasts go through.
    ///   - connect: accepts or refuses each connection; by default everyone is accepted anonymously.
    public init(
        hub: Hub,
        configuration: Configuration = .init(),
        connect: @escaping @Sendable (ConnectRequest) async throws -> ConnectResult = { _ in .accept() }
    ) {
        self.hub = hub
        self.configuration = configuration
        self.connect = connect
    }

    /// Routes topics to a channel: an exact topic (`ticker`) or a prefix pattern (`room:*`).
    /// Routes are tried in the order they were added; the first match wins.
    public mutating func channel(_ pattern: String, _ channel: some TopicChannel) {
        routes.append(Route(pattern: pattern, channel: channel))
    }

    /// The channel serving `topic`, if any.
    func route(_ topic: String) -> (any TopicChannel)? {
        routes.first { $0.matches(topic) }?.channel
    }

    /// Runs the connect handler; a thrown `ConnectRefusal` refuses the connection with its
    /// status and reason, any other error with 403.
    public func accept(_ request: ConnectRequest) async -> ConnectResult {
        do {
            return try await connect(request)
        } catch let refusal as ConnectRefusal {
            return .refuse(status: refusal.status, reason: refusal.reason)
        } catch {
            return .refuse(status: 403, reason: nil)
        }
    }
}
