import Foundation
import Synchronization

/// A reason for closing a connection, with the WebSocket close code clients act on.
public struct CloseReason: Sendable, Hashable, CustomStringConvertible {
    public var code: UInt16
    public var reason: String

    public init(code: UInt16, reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code) \(reason)" }

    /// 1000: the server does not want the client back (phoenix.js does not reconnect).
    public static let normal = CloseReason(code: 1000, reason: "normal")
    /// 1001: disconnected by the server (by socket id); clients reconnect.
    public static let disconnected = CloseReason(code: 1001, reason: "disconnected")
    /// 1002: nothing was received for the idle timeout (Phoenix on Bandit uses the same code).
    public static let idleTimeout = CloseReason(code: 1002, reason: "idle timeout")
    /// 1003: a binary frame this connection's protocol cannot read.
    public static func unsupportedBinary(_ detail: String) -> CloseReason { CloseReason(code: 1003, reason: "unsupported binary frame: \(detail)") }
    /// 1007: a frame that is not a valid message.
    public static func invalidMessage(_ detail: String) -> CloseReason { CloseReason(code: 1007, reason: "invalid message: \(detail)") }
    /// 1008: the outbound queue exceeded its limit because the client does not read fast enough.
    public static let slowConsumer = CloseReason(code: 1008, reason: "slow consumer")
    /// 1009: a message larger than the configured limit.
    public static let messageTooBig = CloseReason(code: 1009, reason: "message too big")
    /// 1012: the server is restarting or draining; reconnect (elsewhere).
    public static let serviceRestart = CloseReason(code: 1012, reason: "server restarting")
}

/// One client connection, whatever its transport: what it is and how to close it.
public final class Connection: Sendable, Identifiable {
    /// Unique on this node.
    public let id: UInt64
    /// The id given at connect (e.g. `user_socket:42`); `disconnect(socketID:)` closes every connection with it.
    public let socketID: String?
    /// What the connect handler stored (user id, roles…).
    public let assigns: Assigns
    /// The transport's name: `websocket`, `longpoll`, `sse`.
    public let transport: String
    /// When it opened, in Unix milliseconds (presence's `online_at`).
    public let openedAt: Int64
    private let closeHandler: @Sendable (CloseReason) -> Void

    static let counter = Atomic<UInt64>(0)

    public init(socketID: String?, assigns: Assigns, transport: String, close: @escaping @Sendable (CloseReason) -> Void) {
        self.id = Self.counter.wrappingAdd(1, ordering: .relaxed).newValue
        self.socketID = socketID
        self.assigns = assigns
        self.transport = transport
        self.openedAt = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        self.closeHandler = close
        SwitchboardMetrics.connectionOpened(transport)
    }

    deinit {
        SwitchboardMetrics.connectionClosed(transport)
    }

    /// Closes the connection (from any thread); it leaves all its topics and rooms.
    public func close(_ reason: CloseReason = .normal) {
        closeHandler(reason)
    }
}
