import NIOCore

/// A plain client's subscription to one topic: writes the pre-encoded frame to the socket.
final class PlainSubscriber: Subscriber, @unchecked Sendable {
    // @unchecked: `replayedThrough` is used on the client's event loop only.
    let core: PlainClientCore
    init(core: PlainClientCore) { self.core = core }
    var id: SubscriberID { core.id }
    var eventLoop: any EventLoop { core.eventLoop }
    var frameFormat: FrameFormat? { core.format }
    var connection: Connection { core.connection }
    /// After a resumed subscription: live messages up to this offset were replayed (or precede
    /// the position read). Event loop only.
    var replayedThrough: UInt64?
    func receive(_ broadcast: Broadcast, frame: ByteBuffer?) {
        if let through = replayedThrough, let position = broadcast.streamPosition, position.offset <= through { return }
        if let frame { core.transport.sendPreEncoded(frame) }
    }
    func flushBatch() { core.transport.flush() }
}
