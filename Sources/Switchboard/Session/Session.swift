import NIOCore

/// What a connection's inbound messages go to: a Phoenix session (`PhoenixSession`) or a plain
/// channel's client. A transport makes one per connection and calls it on the connection's
/// event loop.
public protocol Session: AnyObject {
    /// The connection is open.
    func start()
    /// A complete text message. Returns a close reason when the connection must end.
    func receive(text: ByteBuffer) -> CloseReason?
    /// A complete binary message. Returns a close reason when the connection must end.
    func receive(binary: ByteBuffer) -> CloseReason?
    /// The connection is gone (called once).
    func transportClosed()
}
