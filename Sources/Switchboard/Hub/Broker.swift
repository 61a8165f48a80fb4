import Synchronization

/// Carries broadcasts between nodes.
///
/// The hub hands every broadcast to its broker; the broker delivers it to the hub of every node
/// that has subscribers for the topic (this node included) through the sink given to `attach`.
/// The hub tells the broker when a topic gains its first local subscriber and loses its last one,
/// so a cluster broker subscribes upstream only to topics someone here listens to.
public protocol Broker: Sendable {
    /// Called once by the hub that owns this broker: where to deliver broadcasts for this node.
    func attach(_ deliver: @escaping @Sendable (Broadcast) -> Void)
    /// Hands a broadcast over for delivery on every node. Must not block or wait for delivery.
    func publish(_ broadcast: Broadcast)
    /// The first local subscriber of `topic` arrived. Called with the hub's shard lock held, in the
    /// order of the transitions: record the fact and return (no blocking, no calls into the hub).
    func topicOccupied(_ topic: String)
    /// The last local subscriber of `topic` left. Same rules as `topicOccupied`.
    func topicVacated(_ topic: String)
}

/// The single-node broker: a broadcast goes straight to this node's hub.
public final class MemoryBroker: Broker {
    private let sink = Mutex<Sink?>(nil)

    /// The hub's delivery closure, wrapped in a struct on purpose: a bare closure as a `Mutex`'s
    /// value comes back from every `withLock` wrapped in two more reabstraction thunks (the
    /// generic `inout` converts it and writes the converted value back), so each publish made the
    /// next one slower and its call stack deeper (seen: 660 µs per publish after 20 000).
    private struct Sink {
        let deliver: @Sendable (Broadcast) -> Void
    }

    public init() {}

    public func attach(_ deliver: @escaping @Sendable (Broadcast) -> Void) {
        sink.withLock { $0 = Sink(deliver: deliver) }
    }

    public func publish(_ broadcast: Broadcast) {
        let sink = sink.withLock { $0 }
        sink?.deliver(broadcast)
    }

    public func topicOccupied(_ topic: String) {}
    public func topicVacated(_ topic: String) {}
}
