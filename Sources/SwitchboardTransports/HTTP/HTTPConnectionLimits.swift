import NIOCore

/// Time limits of an HTTP connection before it becomes a WebSocket or an event stream.
public struct HTTPConnectionLimits: Sendable {
    /// A connection that has not sent a complete request head this long after it opened, or after
    /// the answer to its previous request, is closed: a request still incomplete gets 408 first.
    /// This is also how long an idle keep-alive connection is kept.
    public var requestHeadTimeout: TimeAmount = .seconds(30)
    /// Once the server shuts down, an HTTP connection still busy (a request being answered) is
    /// closed after this long at the latest, so that no client can hold the exit.
    public var shutdownGracePeriod: TimeAmount = .seconds(3)

    public init(requestHeadTimeout: TimeAmount = .seconds(30), shutdownGracePeriod: TimeAmount = .seconds(3)) {
        self.requestHeadTimeout = requestHeadTimeout
        self.shutdownGracePeriod = shutdownGracePeriod
    }
}
