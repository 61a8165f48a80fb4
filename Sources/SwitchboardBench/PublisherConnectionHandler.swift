import NIOCore

/// One HTTP/1.1 keep-alive connection of the publisher.
final class PublisherConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let index: Int
    private let publisher: Publisher
    private var context: ChannelHandlerContext?
    private var parser = HTTPResponseParser()
    private var inbound: ByteBuffer?
    /// Message ids and send times of the requests in flight, oldest first (answers come in
    /// request order).
    private var sendTimes: [(id: Int, sentAt: UInt64)] = []
    private var firstSendTime = 0
    var inFlight: Int { sendTimes.count - firstSendTime }
    private(set) var isOpen = false
    private var sequence = 0
    private var closeReason = "closed by the server"

    init(index: Int, publisher: Publisher) {
        self.index = index
        self.publisher = publisher
    }

    var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

    /// The sequence number for the next request on this connection.
    var nextSequence: Int {
        defer { sequence += 1 }
        return sequence
    }

    func send(_ request: ByteBuffer, id: Int, sentAt: UInt64) {
        guard let context else { return }
        sendTimes.append((id, sentAt))
        context.writeAndFlush(wrapOutboundOut(request), promise: nil)
    }

    /// The oldest request in flight, which the next answer belongs to.
    private func popSendTime() -> (id: Int, sentAt: UInt64) {
        let sentAt = sendTimes[firstSendTime]
        firstSendTime += 1
        if firstSendTime == sendTimes.count {
            sendTimes.removeAll(keepingCapacity: true)
            firstSendTime = 0
        }
        return sentAt
    }

    private func answer(_ status: Int) {
        let request = popSendTime()
        publisher.answered(status: status, id: request.id, sentAt: request.sentAt)
    }

    func close() {
        closeReason = "closed by the bench"
        context?.close(promise: nil)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        isOpen = true
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isOpen = false
        if let response = parser.connectionClosed(), inFlight > 0 {
            answer(response.status)
        }
        let unanswered = inFlight
        sendTimes.removeAll()
        firstSendTime = 0
        publisher.connectionClosed(index: index, unanswered: unanswered, reason: closeReason)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closeReason = "\(error)"
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var data = unwrapInboundIn(data)
        var buffer: ByteBuffer
        if var pending = inbound {
            inbound = nil
            pending.writeBuffer(&data)
            buffer = pending
        } else {
            buffer = data
        }
        do {
            while let response = try parser.next(from: &buffer) {
                if inFlight > 0 {
                    answer(response.status)
                }
                if response.closes {
                    closeReason = "the server closed the connection (Connection: close)"
                    isOpen = false
                    context.close(promise: nil)
                    return
                }
            }
        } catch {
            closeReason = "bad response: \(error)"
            context.close(promise: nil)
            return
        }
        if buffer.readableBytes > 0 {
            buffer.discardReadBytes()
            inbound = buffer
        }
    }
}
