import DequeModule
import Logging
import NIOCore
import ServiceLifecycle
import Switchboard
import SwitchboardRESP
import Synchronization

/// A ``Broker`` that joins several nodes through Redis pub/sub: a broadcast published on any node
/// reaches the topic's subscribers on every node.
///
/// - One Redis channel per topic (`channelPrefix` + topic). A node subscribes to it while it has
///   local subscribers for the topic (the hub reports the first and the last one).
/// - A publish is delivered to this node's subscribers at once (no round trip, and it keeps
///   working while Redis is down), encoded once into a ``RedisEnvelope`` carrying this node's id,
///   and queued for Redis. Messages whose origin is this node are ignored when Redis echoes them,
///   so every subscriber gets each broadcast exactly once.
/// - Queued publishes go out as pipelined `PUBLISH` batches over one connection, in order, so
///   each node's broadcasts arrive everywhere in the order they were published.
/// - While Redis is unreachable, broadcasts still reach this node's subscribers but are **not**
///   sent to other nodes (dropped and counted, not buffered); the client reconnects with backoff
///   and subscribes again, and cross-node delivery resumes. Delivery between nodes is therefore
///   at most once.
///
/// Run it (``run()``, or as a `Service` in a `ServiceGroup`) for as long as the hub is used.
/// Give every node a distinct ``nodeID`` and build the hub with the same id:
/// `Hub(nodeID: broker.nodeID, broker: broker)`.
public final class RedisBroker: Broker, Service {
    /// This node's id, carried by every message it publishes.
    public let nodeID: String
    /// How the broker uses Redis.
    public let configuration: Configuration
    /// The Redis connection (pub/sub and publishing share it).
    public let client: RESPClient
    let logger: Logger
    /// Closures are kept in structs: a bare closure as a `Mutex`'s value is re-wrapped in two
    /// reabstraction thunks by every `withLock` (see `MemoryBroker`), making each call slower and deeper.
    let sink = Mutex<Sink?>(nil)
    let subscriptions = Mutex<[String: RESPSubscription]>([:])
    let queue = Mutex(Outbound())
    let wakeUp: AsyncStream<Void>.Continuation
    let wakeUps: AsyncStream<Void>
    let counters = Counters()
    let countSource = Mutex<CountSource?>(nil)
    let presenceReplication = PresenceReplication()

    struct Sink {
        let deliver: @Sendable (Broadcast) -> Void
    }

    struct CountSource {
        let counts: @Sendable () -> [String: Int]
    }

    struct Outbound {
        var messages = Deque<RESPCommand>()
        var bytes = 0
        /// Set when a drop was logged; cleared by the next successful flush (one log line per outage).
        var dropLogged = false
    }

    final class Counters: Sendable {
        let published = Atomic<Int>(0)
        let batches = Atomic<Int>(0)
        let dropped = Atomic<Int>(0)
        let received = Atomic<Int>(0)
        let ownEchoes = Atomic<Int>(0)
        let malformed = Atomic<Int>(0)
    }

    /// - Parameters:
    ///   - nodeID: this node's id; unique in the cluster.
    public init(
        nodeID: String = Hub.randomNodeID(),
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "switchboard.redis")
    ) {
        self.nodeID = nodeID
        self.configuration = configuration
        self.logger = logger
        var redis = configuration.redis
        if redis.clientName == nil { redis.clientName = "switchboard-\(nodeID)" }
        self.client = RESPClient(configuration: redis, logger: logger)
        (wakeUps, wakeUp) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// What the broker has done since it was created.
    public var statistics: Statistics {
        Statistics(
            published: counters.published.load(ordering: .relaxed),
            batches: counters.batches.load(ordering: .relaxed),
            dropped: counters.dropped.load(ordering: .relaxed),
            received: counters.received.load(ordering: .relaxed),
            ownEchoes: counters.ownEchoes.load(ordering: .relaxed),
            malformed: counters.malformed.load(ordering: .relaxed),
            outages: client.statistics.disconnections,
            connected: client.isConnected
        )
    }

    /// The Redis channel that carries `topic`.
    public func channel(for topic: String) -> String { configuration.channelPrefix + topic }

    // MARK: Broker

    public func attach(_ deliver: @escaping @Sendable (Broadcast) -> Void) {
        sink.withLock { $0 = Sink(deliver: deliver) }
    }

    public func publish(_ broadcast: Broadcast) {
        let sink = sink.withLock { $0 }
        sink?.deliver(broadcast)
        guard client.isConnected else {
            drop(1, reason: "Redis is not connected")
            return
        }
        let envelope: ByteBuffer
        do {
            envelope = try RedisEnvelope(origin: nodeID, broadcast: broadcast).encoded()
        } catch {
            drop(1, reason: "\(error)")
            return
        }
        let command = RESPCommand("PUBLISH", arguments: [.string(channel(for: broadcast.topic)), .bytes(envelope)])
        let accepted = queue.withLock { queue -> Bool in
            guard queue.messages.count < configuration.maxQueuedMessages, queue.bytes + envelope.readableBytes <= configuration.maxQueuedBytes else {
                return false
            }
            queue.messages.append(command)
            queue.bytes += envelope.readableBytes
            return true
        }
        if accepted {
            wakeUp.yield()
        } else {
            drop(1, reason: "the queue to Redis is full")
        }
    }

    public func topicOccupied(_ topic: String) {
        // Under the hub's shard lock: only records the wish; the client sends SUBSCRIBE on its loop.
        let subscription = client.subscribe(channel: channel(for: topic)) { [weak self] message in
            self?.received(message, topic: topic)
        }
        let replaced = subscriptions.withLock { $0.updateValue(subscription, forKey: topic) }
        if let replaced { client.unsubscribe(replaced) }
    }

    public func topicVacated(_ topic: String) {
        if let subscription = subscriptions.withLock({ $0.removeValue(forKey: topic) }) {
            client.unsubscribe(subscription)
        }
    }

    // MARK: Receiving

    /// On the client's event loop, in Redis order.
    func received(_ message: RESPPubSubMessage, topic: String) {
        if RedisEnvelope.origin(of: message.payload) == nodeID {
            counters.ownEchoes.add(1, ordering: .relaxed)
            return
        }
        do {
            let envelope = try RedisEnvelope(decoding: message.payload, topic: topic)
            counters.received.add(1, ordering: .relaxed)
            sink.withLock { $0 }?.deliver(envelope.broadcast)
        } catch {
            counters.malformed.add(1, ordering: .relaxed)
            logger.debug("ignored a malformed message from Redis", metadata: ["switchboard.topic": "\(topic)", "error": "\(error)"])
        }
    }

    // MARK: Running

    /// Keeps the Redis connection, sends queued publishes and refreshes this node's subscriber
    /// counts until cancelled or told to shut down gracefully.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            group.addTask { await self.flushLoop() }
            group.addTask { await self.countsLoop() }
            group.addTask { await self.presenceLoop() }
            // Told to stop: the other nodes hear it while the connection is still up.
            if (try? await gracefulShutdown()) != nil { await self.sayGoodbye() }
            group.cancelAll()
        }
    }

    func flushLoop() async {
        var previousBatch = 0
        for await _ in wakeUps {
            while !Task.isCancelled {
                if previousBatch > 1, configuration.flushWindow > .zero {
                    try? await Task.sleep(for: configuration.flushWindow)
                }
                let batch = queue.withLock { queue -> [RESPCommand] in
                    let count = min(queue.messages.count, configuration.maxBatch)
                    let taken = Array(queue.messages.prefix(count))
                    queue.messages.removeFirst(count)
                    for command in taken {
                        if case .bytes(let envelope) = command.arguments[2] { queue.bytes -= envelope.readableBytes }
                    }
                    return taken
                }
                previousBatch = batch.count
                if batch.isEmpty { break }
                counters.batches.add(1, ordering: .relaxed)
                let results = await client.send(batch)
                var failures = 0
                for result in results {
                    if case .failure = result { failures += 1 }
                }
                counters.published.add(results.count - failures, ordering: .relaxed)
                if failures > 0 {
                    drop(failures, reason: "PUBLISH to Redis failed")
                } else {
                    queue.withLock { $0.dropLogged = false }
                }
            }
            if Task.isCancelled { return }
        }
    }

    func drop(_ count: Int, reason: String) {
        counters.dropped.add(count, ordering: .relaxed)
        let first = queue.withLock { queue -> Bool in
            defer { queue.dropLogged = true }
            return !queue.dropLogged
        }
        if first {
            logger.warning(
                "broadcasts are not reaching other nodes (delivered on this node only)",
                metadata: ["redis.reason": "\(reason)", "switchboard.node": "\(nodeID)"]
            )
        }
    }
}
