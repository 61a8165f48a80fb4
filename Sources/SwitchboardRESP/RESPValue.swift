import NIOCore

/// One RESP3 value, as decoded from a Redis reply or push.
///
/// Attributes (`|`) are parsed and skipped: they describe the value that follows them and no
/// command this package issues needs them. RESP2's null bulk string (`$-1`) and null array
/// (`*-1`) decode as ``null``.
public enum RESPValue: Sendable, Hashable {
    /// `+OK`
    case simpleString(String)
    /// `-ERR message`
    case simpleError(String)
    /// `:42`
    case integer(Int64)
    /// `$5\r\nhello` — binary safe; a slice of the received bytes.
    case bulkString(ByteBuffer)
    /// `_`, `$-1`, `*-1`
    case null
    /// `#t`, `#f`
    case boolean(Bool)
    /// `,3.14`, `,inf`, `,-inf`, `,nan`
    case double(Double)
    /// `(3492890328409238509324850943850943825024385` — kept as its decimal text.
    case bigNumber(String)
    /// `!21\r\nSYNTAX invalid syntax`
    case bulkError(String)
    /// `=15\r\ntxt:Some string` — `format` is the three-letter type (`txt`, `mkd`).
    case verbatimString(format: String, text: String)
    /// `*n` elements.
    case array([RESPValue])
    /// `%n` key/value pairs, in the order received.
    case map([KeyValue])
    /// `~n` elements.
    case set([RESPValue])
    /// `>n` elements: out-of-band data such as pub/sub messages.
    case push([RESPValue])

    /// One entry of a map (or of a skipped attribute).
    public struct KeyValue: Sendable, Hashable {
        public var key: RESPValue
        public var value: RESPValue

        public init(key: RESPValue, value: RESPValue) {
            self.key = key
            self.value = value
        }
    }

    /// The text of a simple, bulk or verbatim string (bulk strings decoded as UTF-8).
    public var string: String? {
        switch self {
        case .simpleString(let s): return s
        case .bulkString(let b): return String(buffer: b)
        case .verbatimString(_, let text): return text
        default: return nil
        }
    }

    /// The value of an integer reply (or of a string holding a decimal integer).
    public var int: Int64? {
        switch self {
        case .integer(let i): return i
        case .simpleString, .bulkString: return string.flatMap { Int64($0) }
        default: return nil
        }
    }

    /// The elements of an array, set or push.
    public var elements: [RESPValue]? {
        switch self {
        case .array(let a), .set(let a), .push(let a): return a
        default: return nil
        }
    }

    /// The value stored under `key` (compared as text) when this is a map.
    public subscript(key: String) -> RESPValue? {
        guard case .map(let entries) = self else { return nil }
        return entries.first { $0.key.string == key }?.value
    }
}
