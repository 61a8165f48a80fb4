import NIOCore

/// A plain client's subscription to one topic: writes the pre-encoded frame to the socket.
final class PlainSubscriber: Subscriber {
    let core: PlainClientCore
    init(core: PlainClientCore) { self.core = core }
    var id: SubscriberID { core.id }
    var eventLoop: any EventLoop { core.eventLoop }
    var frameFormat: FrameFormat? { core.format }
    var connection: Connection { core.connection }
    func receive(_ broadcast: Broadcast, frame: ByteBuffer?) {
        if let frame { core.transport.sendPreEncoded(frame) }
    }
    func flushBatch() { core.transport.flush() }
}
