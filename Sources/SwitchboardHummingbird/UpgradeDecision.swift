import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Switchboard

/// What happened to an HTTP connection's first request.
enum SwitchboardUpgradeResult: Sendable {
    /// Upgraded to a Phoenix WebSocket; NIO handlers own the connection from now on.
    case webSocket
    /// An ordinary HTTP request (or an upgrade to a path we do not serve): Hummingbird answers it.
    case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
    /// An upgrade we refused (connect handler, vsn): answer with its status and reason.
    case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, ConnectRefusal)
    /// The first request opened a Server-Sent Events stream; its handler owns the connection.
    case eventStream
}

/// A connect decision taken for a WebSocket upgrade or a stream (Phoenix socket or plain
/// channel), used when the connection's handlers are installed.
enum UpgradeDecision: Sendable {
    /// A Phoenix socket accepted the connection.
    case accepted(socket: PhoenixSocket, serializer: PhoenixSerializer, id: String?, assigns: Assigns)
    /// A plain-channel route accepted it; `assigns` go on the client's `Connection` (they hold
    /// the client's context, for filters).
    case plain(PlainChannelConfiguration, assigns: Assigns, makeSession: @Sendable (any Transport, Connection) -> any Session)
    /// Refused (by the connect handler, the origin policy, the vsn check or the path).
    case refused(ConnectRefusal)
}

struct UpgradeRefused: Error {}
struct NotASocketPath: Error {}
