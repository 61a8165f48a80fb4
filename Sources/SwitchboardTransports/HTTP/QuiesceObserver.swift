import NIOCore

/// Tells the `HTTPInterceptor` that the server is shutting down. It sits in front of NIO's
/// `HTTPServerPipelineHandler`, which takes `ChannelShouldQuiesceEvent` for itself (it closes the
/// connection once idle) and does not pass it on; the interceptor must still see it, to answer a
/// parked poll at once, refuse new work and bound the wait with its grace period. It leaves the
/// pipeline when the connection stops being HTTP.
package final class QuiesceObserver: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked: used only on the channel's event loop.
    package typealias InboundIn = NIOAny

    private weak var interceptor: HTTPInterceptor?

    package init(interceptor: HTTPInterceptor) {
        self.interceptor = interceptor
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { interceptor?.serverQuiescing() }
        context.fireUserInboundEventTriggered(event)
    }
}
