import NIOCore

/// One client connection's way out: a WebSocket, a Server-Sent Events stream or a long-poll
/// session. A session (Phoenix or plain) writes through it; every method is called on `eventLoop`.
///
/// Frames handed to `send` are already in the transport's wire form, written by the serializer
/// the session chose for it (`PhoenixSerializer`, `EventStreamSerializer`, `PlainSerializer`); a
/// transport adds only its framing (a WebSocket header, a long-poll JSON string). Broadcasts
/// arrive pre-encoded once per `broadcastFormat` for every subscriber that shares it.
public protocol Transport: AnyObject, Sendable {
    var eventLoop: any EventLoop { get }
    /// The form in which the hub should pre-encode broadcasts for this transport.
    var broadcastFormat: FrameFormat { get }
    /// True for a transport that only carries messages to the client (Server-Sent Events): its
    /// session joins from the connect request, never answers client frames, and ends when its
    /// last channel ends.
    var isUnidirectional: Bool { get }
    /// Queues one encoded message (not yet flushed).
    func send(_ frame: EncodedFrame)
    /// Queues a broadcast frame the hub encoded in `broadcastFormat` (not yet flushed).
    func sendPreEncoded(_ frame: ByteBuffer)
    /// Writes out what is queued.
    func flush()
    /// Closes the connection (the session has already been told, or will be by `transportClosed`).
    func close(_ reason: CloseReason)
}

extension Transport {
    public var isUnidirectional: Bool { false }
}

/// The former name of `Transport`.
@available(*, deprecated, renamed: "Transport")
public typealias PhoenixTransport = Transport
