import Foundation
import NIOCore

/// One message from a plain client.
public struct PlainMessage: Sendable {
    /// The message bytes.
    public let data: ByteBuffer
    /// Whether it came in a binary frame.
    public let isBinary: Bool

    /// The text, for a text message.
    public var text: String? { isBinary ? nil : String(buffer: data) }

    /// The message parsed as JSON.
    public func json() throws -> JSONValue {
        do {
            return try JSONParser.parse(data)
        } catch {
            throw PlainMessageError("message is not valid JSON: \(error)")
        }
    }

    /// One member of a JSON object message, or nil (also when the message is not a JSON object).
    public subscript(key: String) -> JSONValue? { (try? json())?[key] }

    /// The message decoded into a `Decodable` type.
    public func decode<T: Decodable>(as type: T.Type = T.self) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(data.readableBytesView))
        } catch {
            throw PlainMessageError("message does not decode as \(T.self): \(error)")
        }
    }
}
