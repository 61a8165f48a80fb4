import Foundation
import NIOCore
import Synchronization

/// Who is present in each topic on this node: the tracker behind `ChannelSocket.track`, and the
/// place the rest of the app asks (`hub.presence.list(topic)`, `count(topic)`).
///
/// An entry belongs to the (connection, topic) channel that tracked it and goes when that channel
/// ends, whatever the reason. A key (a user id, typically) holds one meta per channel: the user
/// joins with its first meta and leaves with its last one.
///
/// Subscribers of the topic receive Phoenix's `presence_diff` (`{"joins": …, "leaves": …}`, as a
/// fast-lane broadcast), merged over `diffInterval` under churn: the first change after a quiet
/// interval goes out at once, later ones wait for the interval to end, so a topic never sends
/// more than one diff per interval. A joining channel that asked for it receives `presence_state`
/// after its join reply. Count-only topics send neither: their subscribers receive
/// `presence_count` (`{"users": n, "connections": m}`) at most once per `countInterval`, when it
/// changed.
public final class Presence: Sendable {
    /// How presence behaves on one topic.
    public struct TopicPolicy: Sendable, Hashable {
        /// Send `presence_count` instead of member lists (for topics too big to list).
        public var countOnly: Bool
        /// How long a user's last meta stays after its channel ended, so that a page reload is
        /// not a leave followed by a join. Zero (the default) is Phoenix's behaviour.
        public var grace: Duration

        public init(countOnly: Bool = false, grace: Duration = .zero) {
            self.countOnly = countOnly
            self.grace = grace
        }
    }

    public struct Configuration: Sendable {
        /// The shortest time between two `presence_diff` of one topic (default 50 ms: at most 20
        /// diffs per second per topic, however fast members come and go).
        public var diffInterval: Duration = .milliseconds(50)
        /// The shortest time between two `presence_count` of a count-only topic.
        public var countInterval: Duration = .seconds(1)
        /// The largest meta accepted, as encoded JSON (before the server's `phx_ref` fields).
        public var maxMetaBytes = 4096
        /// Each topic's policy (count-only, grace period).
        public var policy: @Sendable (String) -> TopicPolicy = { _ in TopicPolicy() }

        public init() {}
    }

    public let configuration: Configuration
    let nodeID: String
    private let shards: [Shard]
    private let sink = Mutex<Sink?>(nil)
    private let replicator = Mutex<Replicator?>(nil)
    private let listeners = Mutex<Listeners>(Listeners())
    private let refs: PresenceRefGenerator

    /// The hub's delivery, in a struct (a bare closure in a `Mutex` is re-wrapped by every `withLock`).
    private struct Sink {
        let deliver: @Sendable (Broadcast) -> Void
    }

    private struct Replicator {
        let send: @Sendable (PresenceUpdate) -> Void
    }

    private final class Shard: Sendable {
        let topics = Mutex<[String: PresenceTopic]>([:])
    }

    private struct Listeners {
        var next = 0
        var continuations: [Int: AsyncStream<PresenceEvent>.Continuation] = [:]
    }

    init(nodeID: String, configuration: Configuration, shardCount: Int = 16) {
        self.nodeID = nodeID
        self.configuration = configuration
        self.shards = (0..<max(1, shardCount)).map { _ in Shard() }
        self.refs = PresenceRefGenerator()
    }

    func attach(_ deliver: @escaping @Sendable (Broadcast) -> Void) {
        sink.withLock { $0 = Sink(deliver: deliver) }
    }

    // MARK: Reading

    /// The members of `topic`: key → metas (each with its `phx_ref`), in the order keys arrived.
    public func list(_ topic: String) -> [(key: String, metas: [JSONValue])] {
        let members = shard(topic).topics.withLock { $0[topic]?.members }
        guard let members else { return [] }
        return members.map { key, entries in
            (key, entries.map { (try? JSONParser.parse($0.meta)) ?? .emptyObject })
        }
    }

    /// How many users (keys) and connections (metas) `topic` has.
    public func count(_ topic: String) -> PresenceCount {
        shard(topic).topics.withLock { $0[topic]?.count } ?? .zero
    }

    /// Every topic with presences, with its counts.
    public func topics() -> [String: PresenceCount] {
        var result: [String: PresenceCount] = [:]
        for shard in shards {
            shard.topics.withLock { topics in
                for (topic, state) in topics where !state.isEmpty { result[topic] = state.count }
            }
        }
        return result
    }

    /// The members of `topic` as the JSON object `presence_state` carries (`{key: {"metas": […]}}`),
    /// pending changes included.
    public func stateJSON(_ topic: String) -> ByteBuffer {
        shard(topic).topics.withLock { $0[topic]?.liveState() } ?? ByteBuffer(string: "{}")
    }

    /// What a channel joining `topic` is sent: `presence_state` with the snapshot, or for a
    /// count-only topic `presence_count`.
    func joinerMessage(_ topic: String) -> (event: String, payload: ByteBuffer) {
        let policy = configuration.policy(topic)
        if policy.countOnly {
            return (PresenceEvent.countEvent, JSONWriter.buffer(count(topic).json))
        }
        let state = shard(topic).topics.withLock { topics -> ByteBuffer? in
            guard topics[topic] != nil else { return nil }
            return topics[topic]!.joinerState()
        }
        return (PresenceEvent.stateEvent, state ?? ByteBuffer(string: "{}"))
    }

    // MARK: Tracking

    /// A fresh `phx_ref`.
    func makeRef() -> String { refs.next() }

    /// The app's meta as tracked, or why it cannot be.
    func appMeta(_ meta: JSONValue) throws(PresenceError) -> [UInt8] {
        guard case .object(let members) = meta else { throw .metaNotObject }
        let bytes = PresenceTopic.encodeAppMeta(members)
        guard bytes.count <= configuration.maxMetaBytes else { throw .metaTooLarge }
        return bytes
    }

    func track(topic: String, key: String, owner: SubscriberID, meta: [UInt8], loop: any EventLoop) {
        let policy = configuration.policy(topic)
        let ref = makeRef()
        mutate(topic, policy: policy, loop: loop) { state in
            state.track(key: key, ref: ref, owner: owner, meta: meta)
        }
    }

    func update(topic: String, key: String, owner: SubscriberID, meta: [UInt8], loop: any EventLoop) {
        let policy = configuration.policy(topic)
        let ref = makeRef()
        mutate(topic, policy: policy, loop: loop) { state in
            _ = state.update(key: key, owner: owner, ref: ref, meta: meta)
            return []
        }
    }

    /// Removes `owner`'s entries under `keys`; with `grace`, a key's last meta stays for the
    /// topic's grace period.
    func untrack(topic: String, keys: some Sequence<String>, owner: SubscriberID, loop: any EventLoop, grace useGrace: Bool) {
        let policy = configuration.policy(topic)
        let grace = useGrace ? TimeAmount(policy.grace) : .zero
        var lingers = false
        mutate(topic, policy: policy, loop: loop) { state in
            var changes: [PresenceTopic.Change] = []
            let now = NIODeadline.now()
            for key in keys {
                let result = state.untrack(key: key, owner: owner, grace: grace, now: now)
                changes += result.changes
                lingers = lingers || result.lingering
            }
            return changes
        }
        if lingers { scheduleExpiry(topic, after: grace, loop: loop) }
    }

    /// Applies a change under the topic's lock, tells the listeners, and makes sure a diff (or
    /// count) is on its way.
    private func mutate(
        _ topic: String,
        policy: TopicPolicy,
        loop: any EventLoop,
        announcing: Bool = true,
        _ change: (inout PresenceTopic) -> [PresenceTopic.Change]
    ) {
        let replicate = replicator.withLock { $0 }
        let flushIn: TimeAmount? = shard(topic).topics.withLock { topics in
            var state =
                topics.removeValue(forKey: topic) ?? PresenceTopic(countOnly: policy.countOnly, replicatedNode: replicate == nil ? nil : nodeID)
            let changes = change(&state)
            if announcing { announce(changes, topic: topic) }
            // Under the lock: a topic's changes reach the other nodes in the order they were made.
            let operations = state.takeReplication()
            if let replicate, !operations.isEmpty {
                replicate.send(PresenceUpdate(node: nodeID, topic: topic, operations: operations))
            }
            let delay = scheduleFlush(&state, policy: policy)
            // A topic with nothing left to say is forgotten (a count-only one that still has to
            // tell its subscribers "0" has a flush scheduled).
            if !(state.isEmpty && !state.hasPendingDiff && !state.flushScheduled && state.lingerTimer == nil) {
                topics[topic] = state
            }
            return delay
        }
        if let flushIn {
            if flushIn == .zero {
                loop.execute { self.flush(topic, loop: loop) }
            } else {
                loop.scheduleTask(in: flushIn) { self.flush(topic, loop: loop) }
            }
        }
    }

    /// When the topic's next diff (or count) should go out, if a flush is not already scheduled.
    private func scheduleFlush(_ state: inout PresenceTopic, policy: TopicPolicy) -> TimeAmount? {
        guard !state.flushScheduled else { return nil }
        if state.countOnly {
            guard state.count != (state.lastCount ?? .zero) else { return nil }
        } else {
            guard state.hasPendingDiff else { return nil }
        }
        state.flushScheduled = true
        let interval = TimeAmount(state.countOnly ? configuration.countInterval : configuration.diffInterval)
        let due = state.lastFlush + interval
        let now = NIODeadline.now()
        return due > now ? due - now : .zero
    }

    /// Sends the topic's pending diff (or its count, when it changed) to its subscribers here.
    private func flush(_ topic: String, loop: any EventLoop) {
        let deliver = sink.withLock { $0?.deliver }
        shard(topic).topics.withLock { topics in
            guard var state = topics[topic] else { return }
            state.flushScheduled = false
            state.lastFlush = .now()
            var broadcast: Broadcast?
            if state.countOnly {
                let count = state.count
                if count != (state.lastCount ?? .zero) {
                    state.lastCount = count
                    broadcast = Broadcast(topic: topic, event: PresenceEvent.countEvent, payload: .json(count.json))
                }
            } else if let diff = state.takeDiff() {
                broadcast = Broadcast(topic: topic, event: PresenceEvent.diffEvent, encodedJSON: diff)
            }
            if state.isEmpty && state.lingerTimer == nil {
                topics[topic] = nil
            } else {
                topics[topic] = state
            }
            // Delivered under the lock: diffs of one topic reach the hub in the order they were
            // taken. (The hub's own lock is never held while calling in here.)
            if let broadcast { deliver?(broadcast) }
        }
    }

    private func scheduleExpiry(_ topic: String, after delay: TimeAmount, loop: any EventLoop) {
        let due = NIODeadline.now() + delay
        let schedule = shard(topic).topics.withLock { topics -> Bool in
            guard var state = topics[topic] else { return false }
            if let timer = state.lingerTimer, timer <= due { return false }
            state.lingerTimer = due
            topics[topic] = state
            return true
        }
        guard schedule else { return }
        loop.scheduleTask(deadline: due) { self.expire(topic, loop: loop) }
    }

    private func expire(_ topic: String, loop: any EventLoop) {
        let policy = configuration.policy(topic)
        var next: NIODeadline?
        mutate(topic, policy: policy, loop: loop) { state in
            state.lingerTimer = nil
            let result = state.expire(now: .now())
            next = result.next
            return result.changes
        }
        if let next { scheduleExpiry(topic, after: max(.zero, next - .now()), loop: loop) }
    }

    // MARK: Other nodes

    /// Replicates this node's presence changes through `send` (a cluster broker calls this once,
    /// before any channel tracks): it is called with every change of this node's own entries, per
    /// topic in order, under the topic's lock, so it must only queue the update and return.
    public func replicate(through send: @escaping @Sendable (PresenceUpdate) -> Void) {
        replicator.withLock { $0 = Replicator(send: send) }
    }

    /// Applies another node's changes; its local subscribers get them in their diffs. Lifecycle
    /// events are announced on the node that made the change, not here.
    public func apply(_ update: PresenceUpdate, loop: any EventLoop) {
        guard update.node != nodeID else { return }
        mutate(update.topic, policy: configuration.policy(update.topic), loop: loop, announcing: false) { state in
            state.apply(update.operations, from: update.node)
        }
    }

    /// Replaces everything known of `node` with its full state (`topics`: topic → its entries
    /// as joins), e.g. after a gap in its updates; entries it no longer has leave.
    public func replaceNode(_ node: String, with topics: [String: [PresenceOperation]], loop: any EventLoop) {
        guard node != nodeID else { return }
        var affected = Set(topics.keys)
        for shard in shards {
            shard.topics.withLock { all in
                for (topic, state) in all where state.members.values.contains(where: { $0.contains { $0.owner.node == node } }) {
                    affected.insert(topic)
                }
            }
        }
        for topic in affected {
            let operations = topics[topic] ?? []
            mutate(topic, policy: configuration.policy(topic), loop: loop, announcing: false) { state in
                state.replaceNode(node, with: operations)
            }
        }
    }

    /// Removes every entry of `node` (it stopped, or its lease ran out). With `announcing`, the
    /// members it leaves behind are told to the lifecycle listeners (one node of the cluster does).
    public func removeNode(_ node: String, announcing: Bool, loop: any EventLoop) {
        guard node != nodeID else { return }
        var affected: [String] = []
        for shard in shards {
            shard.topics.withLock { all in
                for (topic, state) in all where state.members.values.contains(where: { $0.contains { $0.owner.node == node } }) {
                    affected.append(topic)
                }
            }
        }
        for topic in affected {
            mutate(topic, policy: configuration.policy(topic), loop: loop, announcing: announcing) { state in
                state.removeNode(node)
            }
        }
    }

    /// This node's own entries in every topic, as joins (the state other nodes ask for).
    public func localState() -> [String: [PresenceOperation]] {
        var result: [String: [PresenceOperation]] = [:]
        for shard in shards {
            shard.topics.withLock { all in
                for (topic, state) in all {
                    let entries = state.entries(of: nodeID)
                    if !entries.isEmpty { result[topic] = entries }
                }
            }
        }
        return result
    }

    // MARK: Lifecycle events

    /// A stream of the topics' lifecycle (occupied, vacated) and of members joining and leaving,
    /// for code off the delivery path (webhooks, audit logs). Each stream gets every event, in
    /// order per topic; when its reader falls `buffer` events behind, the oldest are dropped.
    public func events(buffer: Int = 10_000) -> AsyncStream<PresenceEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: PresenceEvent.self, bufferingPolicy: .bufferingNewest(max(1, buffer)))
        let id = listeners.withLock { l -> Int in
            l.next += 1
            l.continuations[l.next] = continuation
            return l.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.listeners.withLock { $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    /// Called under the topic's lock, so the events of one topic are queued in order.
    private func announce(_ changes: [PresenceTopic.Change], topic: String) {
        guard !changes.isEmpty else { return }
        let continuations = listeners.withLock { Array($0.continuations.values) }
        guard !continuations.isEmpty else { return }
        let time = Int64(Date().timeIntervalSince1970 * 1000)
        for change in changes {
            let event: PresenceEvent
            switch change {
            case .occupied: event = PresenceEvent(kind: .topicOccupied, topic: topic, key: nil, time: time)
            case .vacated: event = PresenceEvent(kind: .topicVacated, topic: topic, key: nil, time: time)
            case .joined(let key): event = PresenceEvent(kind: .memberJoined, topic: topic, key: key, time: time)
            case .left(let key): event = PresenceEvent(kind: .memberLeft, topic: topic, key: key, time: time)
            }
            for continuation in continuations { continuation.yield(event) }
        }
    }

    private func shard(_ topic: String) -> Shard {
        var hasher = Hasher()
        hasher.combine(topic)
        return shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))]
    }
}

/// Changes of one node's own presences in one topic, as they travel between nodes.
public struct PresenceUpdate: Sendable, Hashable {
    public var node: String
    public var topic: String
    public var operations: [PresenceOperation]

    public init(node: String, topic: String, operations: [PresenceOperation]) {
        self.node = node
        self.topic = topic
        self.operations = operations
    }
}

/// A change of who is present in a topic.
public struct PresenceEvent: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// The topic's first member arrived.
        case topicOccupied = "topic.occupied"
        /// The topic's last member left.
        case topicVacated = "topic.vacated"
        /// A key's first meta arrived.
        case memberJoined = "member.joined"
        /// A key's last meta left (after its grace period, if any).
        case memberLeft = "member.left"
    }

    public var kind: Kind
    public var topic: String
    /// The member's key; nil for topic events.
    public var key: String?
    /// When it happened, in Unix milliseconds.
    public var time: Int64

    public init(kind: Kind, topic: String, key: String?, time: Int64) {
        self.kind = kind
        self.topic = topic
        self.key = key
        self.time = time
    }

    /// The events presence sends to clients.
    public static let stateEvent = "presence_state"
    public static let diffEvent = "presence_diff"
    public static let countEvent = "presence_count"
}

/// Why a presence call was refused.
public enum PresenceError: Error, Sendable, Hashable, CustomStringConvertible {
    /// This channel already tracks the key (use `update`).
    case alreadyTracked
    /// This channel does not track the key.
    case notTracked
    /// A meta must be a JSON object.
    case metaNotObject
    /// The meta's JSON is larger than `Presence.Configuration.maxMetaBytes`.
    case metaTooLarge
    /// The channel has ended.
    case channelEnded

    /// The reason as a client reads it in an error reply.
    public var description: String {
        switch self {
        case .alreadyTracked: return "already tracked"
        case .notTracked: return "not tracked"
        case .metaNotObject: return "meta must be an object"
        case .metaTooLarge: return "meta too large"
        case .channelEnded: return "channel ended"
        }
    }
}

/// `phx_ref` values: 15 base64url characters (11 bytes: 5 random per process, then a 48-bit
/// counter), unique across nodes in practice, and short enough for Swift to keep inline.
final class PresenceRefGenerator: Sendable {
    private let prefix: [UInt8]
    private let counter: Atomic<UInt64>

    init() {
        var generator = SystemRandomNumberGenerator()
        prefix = (0..<5).map { _ in UInt8.random(in: 0...255, using: &generator) }
        counter = Atomic(UInt64(Date().timeIntervalSince1970 * 1_000_000) & 0xFFFF_FFFF_FFFF)
    }

    func next() -> String {
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue
        var bytes = prefix
        for shift in stride(from: 40, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: n >> UInt64(shift))) }
        return Self.base64url(bytes)
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func base64url(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let triple = b0 << 16 | b1 << 8 | b2
            let chars = min(4, (bytes.count - i) * 4 / 3 + ((bytes.count - i) < 3 ? 1 : 0))
            for c in 0..<chars { out.append(alphabet[Int((triple >> UInt32(18 - 6 * c)) & 0x3F)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
