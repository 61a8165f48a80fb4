/// An envelope that cannot be encoded, or bytes from Redis that are not a valid envelope.
public struct RedisEnvelopeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { "invalid broker envelope: \(reason)" }
}
