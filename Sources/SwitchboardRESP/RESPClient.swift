import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A Redis client speaking RESP3 over one TCP connection, kept open by ``run()``.
///
/// - Commands are pipelined: any number may be in flight; replies are matched in order.
///   Each has a timeout. Redis error replies throw ``RESPServerError``; a command that cannot be
///   answered (not connected, connection lost, timed out) throws ``RESPClientError``.
/// - Pub/sub shares the connection (RESP3 allows commands while subscribed). Local subscriptions
///   are reference counted per channel: the first sends `SUBSCRIBE`, the last `UNSUBSCRIBE`.
/// - ``run()`` connects (`HELLO 3`, `AUTH`, `SELECT`), and after a lost connection reconnects with
///   exponential backoff and subscribes again to everything still wanted. While it is
///   disconnected, commands fail at once with ``RESPClientError/Code/notConnected``.
///
/// All connection state lives on one event loop; the public methods may be called from anywhere.
public final class RESPClient: Sendable {
    /// Where to connect and the limits used.
    public let configuration: Configuration
    /// The loop that owns the connection and calls subscription handlers.
    public let eventLoop: any EventLoop
    let logger: Logger
    let state: NIOLoopBoundBox<State>
    let nextSubscriptionID = Atomic<UInt64>(0)
    let connectedFlag = Atomic<Bool>(false)
    let counters = Counters()

    /// Connection counts since the client was created.
    public struct Statistics: Sendable, Hashable {
        /// Connections established (handshake completed).
        public var connections: Int
        /// Established connections that were later lost.
        public var disconnections: Int
        /// Connection attempts that failed (TCP connect or handshake).
        public var failedAttempts: Int
    }

    final class Counters: Sendable {
        let connections = Atomic<Int>(0)
        let disconnections = Atomic<Int>(0)
        let failedAttempts = Atomic<Int>(0)
    }

    struct State {
        /// The connection, once its handshake is done; nil while disconnected.
        var channel: (any Channel)?
        var running = false
        var subscriptions: [SubscriptionKey: [UInt64: @Sendable (RESPPubSubMessage) -> Void]] = [:]
    }

    struct SubscriptionKey: Hashable {
        var kind: RESPSubscription.Kind
        var name: String
    }

    /// - Parameters:
    ///   - eventLoop: the loop that owns the connection (one of the singleton group by default).
    public init(
        configuration: Configuration = Configuration(),
        eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
        logger: Logger = Logger(label: "switchboard.resp")
    ) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.logger = logger
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: eventLoop)
    }

    /// Whether a connection is established right now.
    public var isConnected: Bool { connectedFlag.load(ordering: .relaxed) }

    /// Connection counts since the client was created.
    public var statistics: Statistics {
        Statistics(
            connections: counters.connections.load(ordering: .relaxed),
            disconnections: counters.disconnections.load(ordering: .relaxed),
            failedAttempts: counters.failedAttempts.load(ordering: .relaxed)
        )
    }

    // MARK: Commands

    /// Sends one command and returns its reply.
    /// - Throws: ``RESPServerError`` for an error reply, ``RESPClientError`` when there is no reply.
    public func send(_ command: RESPCommand, timeout: TimeAmount? = nil) async throws -> RESPValue {
        let promise = eventLoop.makePromise(of: RESPValue.self)
        let deadline = NIODeadline.now() + (timeout ?? configuration.commandTimeout)
        eventLoop.execute {
            self.write([RESPRequest(command: command, promise: promise, deadline: deadline)])
        }
        return try await promise.futureResult.get()
    }

    /// Sends several commands in one write (pipelined) and returns each one's outcome, in order.
    public func send(_ commands: [RESPCommand], timeout: TimeAmount? = nil) async -> [Result<RESPValue, any Error>] {
        let deadline = NIODeadline.now() + (timeout ?? configuration.commandTimeout)
        let requests = commands.map { RESPRequest(command: $0, promise: eventLoop.makePromise(of: RESPValue.self), deadline: deadline) }
        eventLoop.execute { self.write(requests) }
        // One wait for the whole batch, not one suspension per reply.
        let all = EventLoopFuture.whenAllComplete(requests.map { $0.promise!.futureResult }, on: eventLoop)
        return (try? await all.get()) ?? []
    }

    /// On the loop: writes requests on the current connection, or fails them when there is none.
    func write(_ requests: [RESPRequest]) {
        eventLoop.assertInEventLoop()
        guard let channel = state.value.channel else {
            let error = RESPClientError(.notConnected, "not connected to Redis")
            for request in requests { request.promise?.fail(error) }
            return
        }
        channel.writeAndFlush(RESPRequestBatch(requests: requests), promise: nil)
    }

    // MARK: Connection

    /// Keeps a connection open until the task is cancelled: connects, reconnects with backoff after
    /// a failure or a lost connection, and re-subscribes. Returns when cancelled.
    public func run() async {
        let alreadyRunning = try? await eventLoop.submit { () -> Bool in
            defer { self.state.value.running = true }
            return self.state.value.running
        }.get()
        guard alreadyRunning == false else {
            logger.error("RESPClient.run() called while already running")
            return
        }
        var failures = 0
        while !Task.isCancelled {
            do {
                let channel = try await connect()
                try await withTaskCancellationHandler {
                    try await handshake(channel)
                    try await becomeReady(channel)
                    failures = 0
                    try await channel.closeFuture.get()
                } onCancel: {
                    channel.close(promise: nil)
                }
                if Task.isCancelled { break }
                counters.disconnections.add(1, ordering: .relaxed)
                logger.warning(
                    "lost the connection to Redis; reconnecting",
                    metadata: ["redis.address": "\(configuration.host):\(configuration.port)"]
                )
            } catch {
                if Task.isCancelled { break }
                failures += 1
                counters.failedAttempts.add(1, ordering: .relaxed)
                logger.warning(
                    "cannot connect to Redis",
                    metadata: ["redis.address": "\(configuration.host):\(configuration.port)", "error": "\(error)", "redis.attempt": "\(failures)"]
                )
            }
            do {
                try await Task.sleep(for: reconnectDelay(failures: failures))
            } catch {
                break
            }
        }
        try? await eventLoop.submit {
            if let channel = self.state.value.channel { channel.close(promise: nil) }
            self.state.value.channel = nil
            self.state.value.running = false
            self.connectedFlag.store(false, ordering: .relaxed)
        }.get()
    }

    /// Exponential backoff with jitter (half to the full delay), capped.
    func reconnectDelay(failures: Int) -> Duration {
        let initial = configuration.reconnectDelay.nanoseconds
        let cap = configuration.maxReconnectDelay.nanoseconds
        let exponent = min(max(failures - 1, 0), 30)
        let full = min(cap, initial << Int64(exponent))
        let jittered = Int64.random(in: (full / 2)...max(full / 2, full))
        return .nanoseconds(jittered)
    }

    func connect() async throws -> any Channel {
        let decoder = RESPDecoder(limits: configuration.decoderLimits)
        let interval = configuration.timeoutCheckInterval
        return try await ClientBootstrap(group: eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = RESPConnectionHandler(
                        decoder: decoder,
                        timeoutCheckInterval: interval,
                        onPush: { [weak self] value in self?.dispatch(value) },
                        onInactive: { [weak self, weak channel] in
                            guard let self, let channel else { return }
                            self.connectionEnded(channel)
                        }
                    )
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: configuration.host, port: configuration.port)
            .get()
    }

    /// `HELLO 3` with credentials and name, then `SELECT`, pipelined.
    func handshake(_ channel: any Channel) async throws {
        var hello: [RESPCommand.Argument] = ["3"]
        if let password = configuration.password {
            hello += ["AUTH", .string(configuration.username ?? "default"), .string(password)]
        }
        if let name = configuration.clientName {
            hello += ["SETNAME", .string(name)]
        }
        var commands = [RESPCommand("HELLO", arguments: hello)]
        if configuration.database != 0 {
            commands.append(RESPCommand("SELECT", String(configuration.database)))
        }
        let deadline = NIODeadline.now() + configuration.commandTimeout
        let requests = commands.map { RESPRequest(command: $0, promise: channel.eventLoop.makePromise(of: RESPValue.self), deadline: deadline) }
        channel.writeAndFlush(RESPRequestBatch(requests: requests), promise: nil)
        let hello3 = try await requests[0].promise!.futureResult.get()
        guard case .map = hello3 else { throw RESPClientError(.unexpectedReply, "HELLO 3 did not answer with a map (is this Redis 6 or later?)") }
        for request in requests.dropFirst() { _ = try await request.promise!.futureResult.get() }
    }

    /// On the loop: the connection is usable; subscribe again to everything wanted.
    func becomeReady(_ channel: any Channel) async throws {
        try await eventLoop.submit {
            guard channel.isActive else { throw RESPClientError(.connectionLost, "connection to Redis lost during the handshake") }
            self.state.value.channel = channel
            self.connectedFlag.store(true, ordering: .relaxed)
            self.counters.connections.add(1, ordering: .relaxed)
            self.resubscribeAll()
        }.get()
        logger.info("connected to Redis", metadata: ["redis.address": "\(configuration.host):\(configuration.port)"])
    }

    /// On the loop, from the handler: the connection is gone.
    func connectionEnded(_ channel: any Channel) {
        if state.value.channel === channel {
            state.value.channel = nil
            connectedFlag.store(false, ordering: .relaxed)
        }
    }
}
