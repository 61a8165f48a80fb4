import NIOCore

/// Listens on a connection's socket-id topic and closes the connection on `disconnect`.
final class SocketIDListener: Subscriber {
    let id: SubscriberID
    let connection: Connection
    let eventLoop: any EventLoop

    init(connection: Connection, eventLoop: any EventLoop, node: String) {
        self.id = SubscriberID.next(node: node)
        self.connection = connection
        self.eventLoop = eventLoop
    }

    var frameFormat: FrameFormat? { nil }

    func receive(_ broadcast: Broadcast, frame: ByteBuffer?) {
        if broadcast.event == PhoenixEvent.disconnect {
            connection.close(.disconnected)
        }
    }

    func flushBatch() {}
}
