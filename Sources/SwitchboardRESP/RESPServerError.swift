/// Redis answered a command with an error reply (`-ERR …` or a bulk error).
public struct RESPServerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The whole message, e.g. `WRONGTYPE Operation against a key holding the wrong kind of value`.
    public var message: String

    public init(message: String) {
        self.message = message
    }

    /// The error code: the message's first word (`ERR`, `WRONGTYPE`, `NOAUTH`, `NOPERM`, …).
    public var code: String {
        String(message.prefix { $0 != " " })
    }

    public var description: String { "Redis error: \(message)" }
}
