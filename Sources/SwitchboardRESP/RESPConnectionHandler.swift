import DequeModule
import NIOCore

/// Owns one connection's protocol state on its event loop: encodes requests, decodes replies,
/// matches each reply to the oldest request still waiting (Redis answers in order), routes pushes,
/// and fails waiting requests on timeout, connection loss or a protocol error.
final class RESPConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RESPRequestBatch
    typealias OutboundOut = ByteBuffer

    struct Pending {
        var promise: EventLoopPromise<RESPValue>?
        var deadline: NIODeadline?
        var confirmations: Int
    }

    private var pending = Deque<Pending>()
    private var cumulation: ByteBuffer?
    private let decoder: RESPDecoder
    private let timeoutCheckInterval: TimeAmount
    private let onPush: (RESPValue) -> Void
    private let onInactive: () -> Void
    private var timer: Scheduled<Void>?
    private var closed = false

    init(decoder: RESPDecoder, timeoutCheckInterval: TimeAmount, onPush: @escaping (RESPValue) -> Void, onInactive: @escaping () -> Void) {
        self.decoder = decoder
        self.timeoutCheckInterval = timeoutCheckInterval
        self.onPush = onPush
        self.onInactive = onInactive
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let batch = unwrapOutboundIn(data)
        guard !closed else {
            let error = RESPClientError(.connectionLost, "connection to Redis closed")
            for request in batch.requests { request.promise?.fail(error) }
            promise?.fail(error)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: 64 * batch.requests.count)
        var needsTimer = false
        for request in batch.requests {
            request.command.write(into: &buffer)
            pending.append(Pending(promise: request.promise, deadline: request.deadline, confirmations: request.confirmations))
            needsTimer = needsTimer || request.deadline != nil
        }
        if needsTimer && timer == nil { armTimer(context: context) }
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if cumulation == nil {
            cumulation = incoming
        } else {
            cumulation!.writeBuffer(&incoming)
        }
        do {
            while var buffer = cumulation, buffer.readableBytes > 0 {
                guard let value = try decoder.decode(&buffer) else { break }
                cumulation = buffer
                handle(value)
                if closed {
                    context.close(promise: nil)
                    return
                }
            }
            if let buffer = cumulation, buffer.readableBytes == 0 {
                cumulation = nil
            } else if (cumulation?.readerIndex ?? 0) > 0 {
                // Under steady traffic a partial value is almost always left over: move it to the
                // front, or the consumed bytes would stay in the buffer and be copied on every growth.
                cumulation?.discardReadBytes()
            }
        } catch {
            failAll(RESPClientError(.protocolError, "\(error)"))
            context.close(promise: nil)
        }
    }

    private func handle(_ value: RESPValue) {
        if case .push(let items) = value {
            let kind = items.first?.string?.lowercased() ?? ""
            let isConfirmation = ["subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ssubscribe", "sunsubscribe"].contains(kind)
            if isConfirmation, pending.first.map({ $0.confirmations > 0 }) == true {
                pending[pending.startIndex].confirmations -= 1
                if pending[pending.startIndex].confirmations == 0 {
                    pending.removeFirst().promise?.succeed(value)
                }
                return
            }
            onPush(value)
            return
        }
        guard let request = pending.popFirst() else {
            // A reply nobody asked for: the stream is out of step; treat as a protocol error.
            failAll(RESPClientError(.protocolError, "reply without a request"))
            return
        }
        switch value {
        case .simpleError(let message), .bulkError(let message):
            request.promise?.fail(RESPServerError(message: message))
        default:
            request.promise?.succeed(value)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RESPClientError(.connectionLost, "connection to Redis lost"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(RESPClientError(.connectionLost, "connection to Redis closed"))
    }

    private func failAll(_ error: RESPClientError) {
        let wasOpen = !closed
        closed = true
        timer?.cancel()
        timer = nil
        let failed = pending
        pending.removeAll()
        for request in failed { request.promise?.fail(error) }
        if wasOpen { onInactive() }
    }

    private func armTimer(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeoutCheckInterval) { [self] in
            timer = nil
            expireTimedOut(context: context)
        }
    }

    /// Fails requests past their deadline. Their entries stay queued so later replies still match
    /// the right requests; the late reply is then discarded.
    private func expireTimedOut(context: ChannelHandlerContext) {
        guard !closed else { return }
        let now = NIODeadline.now()
        var waiting = false
        for i in pending.indices {
            guard let deadline = pending[i].deadline, let promise = pending[i].promise else { continue }
            if deadline <= now {
                pending[i].promise = nil
                promise.fail(RESPClientError(.timeout, "no reply from Redis in time"))
            } else {
                waiting = true
            }
        }
        if waiting { armTimer(context: context) }
    }
}
