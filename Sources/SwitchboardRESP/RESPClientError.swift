/// Why a command sent through a ``RESPClient`` got no reply from Redis.
public struct RESPClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable code a caller can switch on.
    public enum Code: String, Sendable, Hashable {
        /// No connection to Redis right now (connecting, reconnecting, or the client is not running).
        case notConnected = "not_connected"
        /// The connection was lost (or closed) before the reply arrived; the command may or may not have run.
        case connectionLost = "connection_lost"
        /// No reply within the command's timeout. A late reply is discarded.
        case timeout
        /// The server sent bytes that are not valid RESP3; the connection was closed.
        case protocolError = "protocol_error"
        /// The reply had an unexpected shape.
        case unexpectedReply = "unexpected_reply"
    }

    /// What went wrong.
    public var code: Code
    /// Details for logs.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
