import Logging
import NIOCore
import Synchronization

/// The local registry of topics and their subscribers, and the fan-out.
///
/// Every transport registers its subscribers here; every broadcast — from channel code, the HTTP
/// API, a timer, or another node through the broker — passes through `broadcast` and reaches
/// them. Topics are spread over lock-protected shards; a broadcast takes a snapshot of the
/// topic's subscribers (copy-on-write arrays, grouped by event loop) under the lock and fans
/// out outside it: it encodes once per wire form, hops once per event loop, writes to every
/// subscriber there, then flushes each one. It never waits for a subscriber.
public final class Hub: Sendable {
    /// This node's id (carried by broadcasts that cross nodes).
    public let nodeID: String
    /// Carries broadcasts between nodes; in-memory by default.
    public let broker: any Broker
    /// Who is present in each topic (`ChannelSocket.track`), and their diffs to subscribers.
    public let presence: Presence
    /// The topics' message streams (for topics whose policy keeps history).
    public let history: History
    let shards: [Shard]
    let logger: Logger

    /// - Parameters:
    ///   - broker: how broadcasts travel between nodes (`MemoryBroker` for one node).
    ///   - shardCount: lock shards for the topic registry.
    ///   - presence: how presence batches its diffs and treats each topic.
    public init(
        nodeID: String = Hub.randomNodeID(),
        broker: any Broker = MemoryBroker(),
        shardCount: Int = 16,
        presence: Presence.Configuration = Presence.Configuration(),
        history: History.Configuration = History.Configuration(),
        logger: Logger = Logger(label: "switchboard.hub")
    ) {
        self.nodeID = nodeID
        self.broker = broker
        self.shards = (0..<max(1, shardCount)).map { _ in Shard() }
        self.presence = Presence(nodeID: nodeID, configuration: presence)
        self.history = History(configuration: history)
        self.logger = logger
        broker.attach { [weak self] broadcast in
            self?.deliverLocally(broadcast)
        }
        // Diffs are made on every node from its own view of the topic, so they stay on this node.
        self.presence.attach { [weak self] broadcast in
            self?.deliverLocally(broadcast)
        }
    }

    /// A random node id.
    public static func randomNodeID() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    // MARK: Publishing

    /// Publishes to every subscriber of `topic` on every node. Returns once handed over, not when delivered.
    public func broadcast(topic: String, event: String, payload: Payload) {
        publish(Broadcast(topic: topic, event: event, payload: payload))
    }

    /// Publishes a JSON payload.
    public func broadcast(topic: String, event: String, payload: JSONValue) {
        broadcast(topic: topic, event: event, payload: .json(payload))
    }

    /// Publishes any `Encodable` value as JSON.
    public func broadcast(topic: String, event: String, encoding value: some Encodable) throws {
        broadcast(topic: topic, event: event, payload: .json(try JSONValue(encoding: value)))
    }

    /// Publishes to every subscriber of the broadcast's topic except `broadcast.excluding`.
    /// In a topic with history, the broadcast is stored first and carries its position (unless
    /// `recordsHistory` is false).
    public func publish(_ broadcast: Broadcast) {
        // A filter cannot travel to other nodes: a filtered broadcast stays on this one (and out
        // of the history, which is everyone's).
        guard broadcast.filter == nil else { return deliverLocally(broadcast) }
        if broadcast.recordsHistory, broadcast.streamPosition == nil {
            let broker = self.broker
            let stored = history.append(topic: broadcast.topic, event: broadcast.event, payload: broadcast.payload) { position in
                var positioned = broadcast
                positioned.streamPosition = position
                broker.publish(positioned)
            }
            if stored != nil { return }
        }
        broker.publish(broadcast)
    }

    /// Closes every connection (on every node) whose socket id is `socketID`.
    public func disconnect(socketID: String) {
        broker.publish(Broadcast(topic: socketID, event: PhoenixEvent.disconnect, payload: .json(.emptyObject)))
    }

    /// Delivers `payload` to the subscribers of `topic` on this node whose connection passes
    /// `filter` (encoded once, like any broadcast; the filter runs per subscriber).
    public func broadcast(topic: String, event: String, payload: JSONValue, filter: @escaping @Sendable (Connection) -> Bool) {
        var broadcast = Broadcast(topic: topic, event: event, payload: .json(payload))
        broadcast.filter = filter
        deliverLocally(broadcast)
    }

    /// Delivers a broadcast to this node's subscribers only. Brokers call this for what they receive.
    public func deliverLocally(_ broadcast: Broadcast) {
        // Taking the snapshot and the next position under one lock keeps positions in delivery order.
        guard
            let entry = shard(for: broadcast.topic).entries.withLock({ entries -> TopicEntry? in
                guard entries[broadcast.topic] != nil else { return nil }
                entries[broadcast.topic]!.position &+= 1
                return entries[broadcast.topic]
            })
        else { return }
        var stamped = broadcast
        stamped.position = entry.position
        deliver(stamped, to: entry)
    }

    private func deliver(_ broadcast: Broadcast, to entry: TopicEntry) {
        // Encode once per wire form in use on this topic.
        var frames: [(FrameFormat, ByteBuffer?)] = []
        frames.reserveCapacity(entry.formats.count)
        for (format, _) in entry.formats {
            frames.append((format, format.encode(broadcast)))
        }
        let shared = frames
        let start = NIODeadline.now()
        SwitchboardMetrics.broadcastDelivered()
        for group in entry.groups {
            let subscribers = group.subscribers
            let flusher = group.flusher
            flusher.broadcastQueued()
            group.loop.execute {
                let flushEach = flusher.broadcastStarts()
                // One private copy of each frame per event loop: subscribers on this loop then share
                // it without contending on another thread's reference count.
                let local = shared.map { (format, frame) in (format, frame.map { ByteBuffer(buffer: $0) }) }
                for subscriber in subscribers {
                    if let excluded = broadcast.excluding, excluded == subscriber.id { continue }
                    if let filter = broadcast.filter, !filter(subscriber.connection) { continue }
                    var frame: ByteBuffer?
                    if let wanted = subscriber.frameFormat {
                        for (format, encoded) in local where format === wanted {
                            frame = encoded
                            break
                        }
                    }
                    subscriber.receive(broadcast, frame: frame)
                    if flushEach { subscriber.flushBatch() }
                }
                if !flushEach { flusher.flushSoon(subscribers) }
                SwitchboardMetrics.delivered(subscribers.count, since: start)
            }
        }
    }

    // MARK: Subscriptions

    /// Adds a subscriber to a topic (or a room: rooms are topics). Idempotent.
    ///
    /// The broker hears of a topic's first subscriber and of its last one while the shard lock is
    /// held, so its notifications always follow the order of the transitions (an occupied/vacated
    /// pair can never reach it reversed). Brokers therefore must not block or call back into the hub there.
    public func subscribe(_ subscriber: any Subscriber, to topic: String) {
        shard(for: topic).entries.withLock { entries in
            // Mutated in place: copying the entry out and back would copy its subscriber array.
            let added = entries[topic, default: TopicEntry()].add(subscriber)
            if added && entries[topic]?.count == 1 { broker.topicOccupied(topic) }
        }
    }

    /// Removes a subscriber from a topic. Idempotent.
    public func unsubscribe(_ subscriber: any Subscriber, from topic: String) {
        shard(for: topic).entries.withLock { entries in
            guard entries[topic]?.remove(subscriber) == true else { return }
            if entries[topic]?.count == 0 {
                entries[topic] = nil
                broker.topicVacated(topic)
            }
        }
    }

    /// How many subscribers `topic` has on this node.
    public func localSubscriberCount(topic: String) -> Int {
        shard(for: topic).entries.withLock { $0[topic]?.count ?? 0 }
    }

    /// The connections subscribed to `topic` (or in room `topic`) on this node, each once.
    public func localConnections(topic: String) -> [Connection] {
        guard let entry = shard(for: topic).entries.withLock({ $0[topic] }) else { return [] }
        var seen = Set<UInt64>()
        var result: [Connection] = []
        for group in entry.groups {
            for subscriber in group.subscribers where seen.insert(subscriber.connection.id).inserted {
                result.append(subscriber.connection)
            }
        }
        return result
    }

    /// Every topic with subscribers on this node, with their counts.
    public func localTopics() -> [String: Int] {
        var result: [String: Int] = [:]
        for shard in shards {
            shard.entries.withLock { entries in
                for (topic, entry) in entries { result[topic] = entry.count }
            }
        }
        return result
    }

    func shard(for topic: String) -> Shard {
        var hasher = Hasher()
        hasher.combine(topic)
        let h = hasher.finalize()
        return shards[Int(UInt(bitPattern: h) % UInt(shards.count))]
    }
}

extension Hub {
    final class Shard: Sendable {
        let entries = Mutex<[String: TopicEntry]>([:])
    }

    /// One topic's subscribers, grouped by event loop, and the wire forms they use.
    struct TopicEntry {
        struct LoopGroup {
            let loop: any EventLoop
            var subscribers: [any Subscriber]
            let flusher: LoopFlusher

            init(loop: any EventLoop, subscribers: [any Subscriber]) {
                self.loop = loop
                self.subscribers = subscribers
                self.flusher = LoopFlusher.of(loop)
            }
        }

        var groups: [LoopGroup] = []
        /// Each wire form in use and how many subscribers use it.
        var formats: [(FrameFormat, Int)] = []
        var count = 0
        /// The position of the last broadcast delivered on this topic.
        var position: UInt64 = 0

        mutating func add(_ subscriber: any Subscriber) -> Bool {
            let loop = subscriber.eventLoop
            if let g = groups.firstIndex(where: { $0.loop === loop }) {
                if groups[g].subscribers.contains(where: { $0 === subscriber }) { return false }
                groups[g].subscribers.append(subscriber)
            } else {
                groups.append(LoopGroup(loop: loop, subscribers: [subscriber]))
            }
            if let format = subscriber.frameFormat {
                if let f = formats.firstIndex(where: { $0.0 === format }) {
                    formats[f].1 += 1
                } else {
                    formats.append((format, 1))
                }
            }
            count += 1
            return true
        }

        mutating func remove(_ subscriber: any Subscriber) -> Bool {
            let loop = subscriber.eventLoop
            guard let g = groups.firstIndex(where: { $0.loop === loop }),
                let i = groups[g].subscribers.firstIndex(where: { $0 === subscriber })
            else { return false }
            groups[g].subscribers.remove(at: i)
            if groups[g].subscribers.isEmpty { groups.remove(at: g) }
            if let format = subscriber.frameFormat, let f = formats.firstIndex(where: { $0.0 === format }) {
                formats[f].1 -= 1
                if formats[f].1 == 0 { formats.remove(at: f) }
            }
            count -= 1
            return true
        }
    }
}
