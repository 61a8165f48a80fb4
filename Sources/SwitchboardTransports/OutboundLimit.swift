import Logging
import NIOCore
import Switchboard

/// The slow-consumer rule, one for every transport: a client whose queued outbound bytes pass
/// `maxQueuedBytes` does not read fast enough and is closed (1008 where a close can still reach
/// it), so its queue is freed and it cannot hold memory for everyone else.
///
/// On a socket the queue is NIO's: the channel's write-buffer high-water mark is the limit, and
/// `isWritable` turning false is the signal. A long-poll session's queue waits for the next poll
/// in the session itself, and counts its own bytes.
public struct OutboundLimit: Sendable {
    public let maxQueuedBytes: Int

    public init(maxQueuedBytes: Int) {
        self.maxQueuedBytes = maxQueuedBytes
    }

    /// Makes the channel unwritable once `maxQueuedBytes` are queued (and writable again at half).
    public func install(on channel: any Channel) throws {
        let high = max(maxQueuedBytes, 1024)
        try channel.syncOptions?.setOption(ChannelOptions.writeBufferWaterMark, value: .init(low: high / 2, high: high))
    }

    /// For `channelWritabilityChanged` (the limit is the channel's own: no state is kept per
    /// connection for it): unflushed bytes of a burst of broadcasts count too, so
    /// they are written out first (`flushPending`, which may re-enter the handler) and the client
    /// is judged by what the socket could not take. True when the client is a slow consumer
    /// (counted and logged): close it.
    public static func isExceeded(context: ChannelHandlerContext, flushPending: () -> Void, logger: Logger) -> Bool {
        guard !context.channel.isWritable else { return false }
        flushPending()
        guard !context.channel.isWritable else { return false }
        slowConsumer(logger: logger)
        return true
    }

    /// For a queue kept outside a socket: true when `queuedBytes` passed the limit (counted and
    /// logged): close the session.
    public func isExceeded(queuedBytes: Int, logger: Logger) -> Bool {
        guard queuedBytes > maxQueuedBytes else { return false }
        Self.slowConsumer(logger: logger)
        return true
    }

    private static func slowConsumer(logger: Logger) {
        logger.debug("closing slow consumer")
        SwitchboardMetrics.slowConsumerClosed()
    }
}
