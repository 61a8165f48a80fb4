import NIOCore
import Synchronization

/// A message published to a topic, on its way to every subscriber of that topic on every node.
public struct Broadcast: Sendable {
    public var topic: String
    public var event: String
    public var payload: Payload {
        didSet { encodedJSON = nil }
    }
    /// The subscriber that must not receive it (broadcast-from), if any.
    public var excluding: SubscriberID?
    /// Its position in the topic on this node (1, 2, 3…), stamped by the hub at delivery. Counts
    /// restart when a topic has had no subscriber here; the history feature makes them durable.
    public var position: UInt64?
    /// Its place in the topic's stream, in topics with history (stamped by `Hub.publish`);
    /// Phoenix frames carry it as their `ref`, `"<epoch>:<offset>"`.
    public var streamPosition: StreamPosition?
    /// False: delivered live but not stored, so it takes no offset (ephemeral events on a topic
    /// with history).
    public var recordsHistory = true
    /// Delivered only to connections for which this is true (evaluated per subscriber on this
    /// node; a closure cannot travel to other nodes, so filtered broadcasts are node-local).
    public var filter: (@Sendable (Connection) -> Bool)?

    /// The payload's JSON text, when whoever made the broadcast already had it (presence diffs):
    /// the built-in wire forms write it as it is instead of encoding `payload` again, which keeps
    /// its key order. Cleared when `payload` is set.
    var encodedJSON: ByteBuffer?

    public init(topic: String, event: String, payload: Payload, excluding: SubscriberID? = nil) {
        self.topic = topic
        self.event = event
        self.payload = payload
        self.excluding = excluding
    }

    /// A broadcast of JSON text already encoded (it must be valid JSON: it is parsed for `payload`).
    init(topic: String, event: String, encodedJSON: ByteBuffer) {
        self.init(topic: topic, event: event, payload: .json((try? JSONParser.parse(encodedJSON)) ?? .emptyObject))
        self.encodedJSON = encodedJSON
    }
}

/// Identifies one subscriber across the cluster: this node's id and a number unique on the node.
public struct SubscriberID: Sendable, Hashable, CustomStringConvertible {
    public var node: String
    public var local: UInt64

    /// An id as carried between nodes (brokers decode it from their wire format).
    public init(node: String, local: UInt64) {
        self.node = node
        self.local = local
    }

    public var description: String { "\(node)/\(local)" }

    static let counter = Atomic<UInt64>(0)

    /// A fresh id on this node.
    public static func next(node: String) -> SubscriberID {
        SubscriberID(node: node, local: counter.wrappingAdd(1, ordering: .relaxed).newValue)
    }
}

/// A wire form of a broadcast (e.g. "Phoenix V2 over WebSocket"). The hub encodes each broadcast
/// once per form used by the topic's subscribers and hands the same bytes to all of them.
public final class FrameFormat: Sendable {
    /// A short name for logs and metrics.
    public let name: String
    let encode: @Sendable (Broadcast) -> ByteBuffer?

    /// - Parameter encode: the complete frame for a broadcast, or `nil` when it cannot be sent in this form.
    public init(name: String, encode: @escaping @Sendable (Broadcast) -> ByteBuffer?) {
        self.name = name
        self.encode = encode
    }
}

/// Something that receives a topic's broadcasts on its event loop.
///
/// The hub never awaits a subscriber: it calls `receive` for every subscriber on one event loop,
/// in one task per event loop, and `flushBatch` on each in a task queued behind it, so a burst of
/// broadcasts is flushed once (`flushBatch` may be called when nothing is left to flush).
public protocol Subscriber: AnyObject, Sendable {
    var id: SubscriberID { get }
    /// The loop `receive` and `flushBatch` are called on.
    var eventLoop: any EventLoop { get }
    /// The pre-encoded form this subscriber wants, or `nil` if it handles the raw broadcast itself.
    var frameFormat: FrameFormat? { get }
    /// The connection behind this subscriber (for listing a room's members and closing them).
    var connection: Connection { get }
    /// Delivers one broadcast; `frame` is its encoding in `frameFormat` (nil if none or not encodable).
    func receive(_ broadcast: Broadcast, frame: ByteBuffer?)
    /// Ends a batch of `receive` calls: flush what was written.
    func flushBatch()
}
