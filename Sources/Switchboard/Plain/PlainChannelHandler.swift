/// The code behind a plain channel. Callbacks for one client run one at a time, in order.
public protocol PlainChannelHandler: Sendable {
    associatedtype ClientContext: Sendable

    /// Accepts (with a per-client context, e.g. the user resolved from a URL variable) or refuses.
    func connect(_ request: ConnectRequest, channel: PlainChannel) async throws -> PlainConnectResult<ClientContext>
    /// The socket is open: join rooms, greet, announce.
    func connected(_ client: PlainClient<ClientContext>) async throws
    /// A message from the client. A thrown `PlainMessageError` is answered to this client as
    /// `{"error": {"code", "message"}}` and the connection stays open; other errors likewise with
    /// code `handler_error`.
    func message(_ message: PlainMessage, from client: PlainClient<ClientContext>) async throws
    /// The socket closed; the client has already left every room.
    func disconnected(_ client: PlainClient<ClientContext>) async
}

extension PlainChannelHandler {
    public func connected(_ client: PlainClient<ClientContext>) async throws {}
    public func message(_ message: PlainMessage, from client: PlainClient<ClientContext>) async throws {}
    public func disconnected(_ client: PlainClient<ClientContext>) async {}
}
