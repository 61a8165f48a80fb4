import NIOCore

/// A command for Redis: its name and arguments, sent as an array of bulk strings.
public struct RESPCommand: Sendable {
    /// One argument: text (sent as UTF-8) or bytes sent as they are.
    public enum Argument: Sendable, Hashable, ExpressibleByStringLiteral {
        case string(String)
        case bytes(ByteBuffer)

        public init(stringLiteral value: String) { self = .string(value) }

        var byteCount: Int {
            switch self {
            case .string(let s): return s.utf8.count
            case .bytes(let b): return b.readableBytes
            }
        }
    }

    /// The command name followed by its arguments.
    public var arguments: [Argument]

    /// A command from its name and text arguments: `RESPCommand("SET", "key", "value")`.
    public init(_ name: String, _ arguments: String...) {
        self.arguments = [.string(name)] + arguments.map { .string($0) }
    }

    /// A command from its name and arguments of any kind.
    public init(_ name: String, arguments: [Argument]) {
        self.arguments = [.string(name)] + arguments
    }

    /// The command name, upper-cased.
    public var name: String {
        switch arguments.first {
        case .string(let s): return s.uppercased()
        case .bytes(let b): return String(buffer: b).uppercased()
        case nil: return ""
        }
    }

    /// Appends the command in RESP form (an array of bulk strings) to `buffer`.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        buffer.writeString(String(arguments.count))
        buffer.writeStaticString("\r\n")
        for argument in arguments {
            buffer.writeInteger(UInt8(ascii: "$"))
            buffer.writeString(String(argument.byteCount))
            buffer.writeStaticString("\r\n")
            switch argument {
            case .string(let s): buffer.writeString(s)
            case .bytes(let b): buffer.writeImmutableBuffer(b)
            }
            buffer.writeStaticString("\r\n")
        }
    }
}
