import NIOCore

/// A local subscription to a Redis channel or pattern, returned by ``RESPClient/subscribe(channel:handler:)``;
/// pass it to ``RESPClient/unsubscribe(_:)`` to end it.
public struct RESPSubscription: Sendable, Hashable {
    /// A channel name or a glob-style pattern.
    public enum Kind: Sendable, Hashable {
        case channel
        case pattern
    }

    /// Channel or pattern.
    public var kind: Kind
    /// The channel name or pattern.
    public var name: String
    /// Distinguishes local subscribers of the same channel.
    public var id: UInt64
}

/// A message published to a channel this client subscribes to.
public struct RESPPubSubMessage: Sendable, Hashable {
    /// The channel it was published to.
    public var channel: String
    /// The pattern that matched, for pattern subscriptions.
    public var pattern: String?
    /// What was published.
    public var payload: ByteBuffer

    public init(channel: String, pattern: String?, payload: ByteBuffer) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }
}
