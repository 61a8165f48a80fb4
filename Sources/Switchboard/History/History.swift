import Foundation
import Synchronization

/// The hub's message history: a stream per topic that has a `HistoryPolicy`, with positions
/// (epoch and offset) for every message published to it, so a client that reconnects can be
/// given exactly what it missed (`recover`) and an app can read what was said (`messages`).
///
/// In memory, on this node: a topic's epoch is made when its stream is first needed and lasts as
/// long as the process. (Across nodes, positions must come from one shared store; see the Redis
/// backend.)
public final class History: Sendable {
    public struct Configuration: Sendable {
        /// The policy of each topic; nil: no history (the default for every topic).
        public var policy: @Sendable (String) -> HistoryPolicy? = { _ in nil }

        public init() {}
    }

    /// Why a history read was refused.
    public enum ReadError: Error, Hashable {
        /// `since` names another lifetime of the stream; its offsets mean nothing now.
        case epochMismatch(current: StreamPosition)
    }

    let configuration: Configuration
    private final class Shard: Sendable {
        let streams = Mutex<[String: TopicStream]>([:])
    }

    private let shards: [Shard]

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.shards = (0..<16).map { _ in Shard() }
    }

    /// Whether `topic` keeps history.
    public func isEnabled(for topic: String) -> Bool {
        configuration.policy(topic) != nil
    }

    /// Stores a message of `topic` and returns its position; nil when the topic keeps no history.
    public func append(topic: String, event: String, payload: Payload, now: Date = Date()) -> StreamPosition? {
        append(topic: topic, event: event, payload: payload, now: now) { _ in }
    }

    /// Stores a message and calls `then` with its position while still holding the topic's lock,
    /// so that what `then` starts (the hub's hand-over to each event loop) happens in offset
    /// order. `then` must only queue work. Returns nil, without calling `then`, when the topic
    /// keeps no history.
    func append(topic: String, event: String, payload: Payload, now: Date = Date(), then: (StreamPosition) -> Void) -> StreamPosition? {
        let time = Self.milliseconds(now)
        return withStream(topic) { stream in
            let position = stream.append(event: event, payload: payload, now: time)
            then(position)
            return position
        }
    }

    /// Runs `body` on `topic`'s stream (made on first use, with a new epoch) under its shard's
    /// lock; nil, without running it, when the topic keeps no history.
    private func withStream<T>(_ topic: String, _ body: (inout TopicStream) -> T) -> T? {
        guard let policy = configuration.policy(topic) else { return nil }
        return shard(topic).streams.withLock { streams in
            body(&streams[topic, default: TopicStream(epoch: Self.newEpoch(), policy: policy)])
        }
    }

    /// The topic's newest position (offset 0 before its first message); nil without history.
    public func position(of topic: String) -> StreamPosition? {
        withStream(topic) { $0.position }
    }

    /// What a client that last saw `since` missed in `topic`; nil without history.
    public func recover(topic: String, since: StreamPosition, now: Date = Date()) -> Recovery? {
        let time = Self.milliseconds(now)
        return withStream(topic) { $0.recover(since: since, now: time) }
    }

    /// The kept messages of `topic`: after `since` (all kept ones without it), oldest first, at
    /// most `limit` of them; with `reverse`, newest first (the `limit` newest). Nil without history.
    public func messages(
        topic: String,
        since: StreamPosition? = nil,
        limit: Int? = nil,
        reverse: Bool = false,
        now: Date = Date()
    ) throws(ReadError) -> (position: StreamPosition, messages: [StoredMessage])? {
        let time = Self.milliseconds(now)
        guard let (position, kept) = withStream(topic, { ($0.position, Array($0.kept(now: time))) }) else { return nil }
        var selected = kept[...]
        if let since {
            guard since.epoch == position.epoch else { throw .epochMismatch(current: position) }
            selected = selected.drop { $0.offset <= since.offset }
        }
        var result = reverse ? Array(selected.reversed()) : Array(selected)
        if let limit { result = Array(result.prefix(max(0, limit))) }
        return (position, result)
    }

    /// A fresh epoch: 8 random bytes in base 36, so two lifetimes of a topic never share one.
    static func newEpoch() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }

    private func shard(_ topic: String) -> Shard {
        var hasher = Hasher()
        hasher.combine(topic)
        return shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))]
    }
}
