/// The bytes received are not valid RESP3 (or exceed the decoder's limits). The connection that
/// produced them cannot be trusted any more and is closed.
public struct RESPDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong.
    public var reason: String
    /// Offset of the offending byte from the start of the value being decoded.
    public var offset: Int

    public init(reason: String, offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String { "invalid RESP at byte \(offset): \(reason)" }
}
