import NIOCore
import SwitchboardRESP

extension RedisBroker {
    /// How the broker uses Redis. Every field has a default.
    public struct Configuration: Sendable {
        /// The Redis connection (default `redis://127.0.0.1:6379`).
        public var redis = RESPClient.Configuration()
        /// Redis channel of a topic: this prefix followed by the topic.
        public var channelPrefix = "switchboard:topic:"
        /// Prefix of the keys holding each node's subscriber counts.
        public var keyPrefix = "switchboard:"
        /// Under load (the previous flush carried more than one message), wait this long before the
        /// next flush so more publishes share one write. An isolated publish is sent at once.
        public var flushWindow: Duration = .milliseconds(1)
        /// Most `PUBLISH` commands in one pipelined write.
        public var maxBatch = 1024
        /// Most messages waiting to be sent to Redis; beyond this, publishes are not sent to other
        /// nodes (still delivered here) and counted as dropped.
        public var maxQueuedMessages = 100_000
        /// Most bytes of envelopes waiting to be sent to Redis (same policy).
        public var maxQueuedBytes = 64 * 1024 * 1024
        /// How often this node writes its topic subscriber counts to Redis.
        public var countsInterval: Duration = .seconds(2)
        /// How long a node's counts stay in Redis without a refresh (a dead node's vanish then).
        public var countsTTL: Duration = .seconds(10)
        /// How often this node tells the others it is alive (with presence replicated).
        public var presenceHeartbeat: Duration = .seconds(1)
        /// How long a node may stay silent before its presences are removed everywhere (a node
        /// killed, or cut off from Redis). The server's `presence_lease_seconds`.
        public var presenceLease: Duration = .seconds(30)
        /// How long a presence change waits for others to share its message.
        public var presenceFlushWindow: Duration = .milliseconds(5)

        public init() {}

        /// A configuration for the Redis server at `url` (`redis://[[user]:password@]host[:port][/db]`).
        public init(url: String) throws(RESPURLError) {
            self.init()
            redis = try RESPClient.Configuration(url: url)
        }
    }

    /// What the broker has done since it was created.
    public struct Statistics: Sendable, Hashable {
        /// Broadcasts handed to Redis (replied to by `PUBLISH`).
        public var published: Int
        /// Pipelined writes of `PUBLISH` commands (fewer than `published` under load).
        public var batches: Int
        /// Broadcasts delivered locally but not sent to other nodes: Redis unreachable, the send
        /// failed, or the queue was full.
        public var dropped: Int
        /// Messages received from other nodes and delivered here.
        public var received: Int
        /// This node's own messages coming back from Redis (ignored: they were delivered locally).
        public var ownEchoes: Int
        /// Messages from Redis that were not valid envelopes (ignored).
        public var malformed: Int
        /// Redis connections lost (each an outage until the reconnect).
        public var outages: Int
        /// Whether the broker is connected to Redis right now.
        public var connected: Bool
    }
}
