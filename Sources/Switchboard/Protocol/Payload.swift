import NIOCore

/// What a message carries: a JSON value, or raw bytes (Phoenix V2 binary frames).
public enum Payload: Sendable, Hashable {
    case json(JSONValue)
    case binary(ByteBuffer)

    /// The JSON value, when this is a JSON payload.
    public var json: JSONValue? {
        if case .json(let v) = self { return v }
        return nil
    }

    /// The bytes, when this is a binary payload.
    public var binary: ByteBuffer? {
        if case .binary(let b) = self { return b }
        return nil
    }

    /// Shorthand for a member of a JSON object payload.
    public subscript(key: String) -> JSONValue? { json?[key] }
}
