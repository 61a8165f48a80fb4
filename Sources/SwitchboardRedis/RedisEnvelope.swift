import NIOCore
import Switchboard

/// A broadcast as it travels through Redis: encoded once per publish, decoded once per receiving node.
///
/// Layout (integers big-endian):
///
/// | bytes | field |
/// | --- | --- |
/// | 1 | version (1) |
/// | 1 | flags: bit 0 binary payload (else JSON text), bit 1 has `excluding` |
/// | 1 + n | origin node id (length-prefixed UTF-8, at most 255 bytes) |
/// | 2 + n | event (length-prefixed UTF-8) |
/// | 1 + n + 8 | `excluding`: subscriber node id and local number (only with flag bit 1) |
/// | rest | payload: JSON text or the binary bytes |
///
/// The topic is not in the envelope: it is the Redis channel the envelope is published to.
public struct RedisEnvelope: Sendable {
    /// The node that published it.
    public var origin: String
    /// The broadcast, with the topic it was published to.
    public var broadcast: Broadcast

    static let version: UInt8 = 1

    public init(origin: String, broadcast: Broadcast) {
        self.origin = origin
        self.broadcast = broadcast
    }

    /// The envelope's bytes.
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(RedisEnvelopeError) -> ByteBuffer {
        let originBytes = origin.utf8.count
        guard originBytes <= 255 else { throw RedisEnvelopeError("origin node id longer than 255 bytes") }
        guard broadcast.event.utf8.count <= Int(UInt16.max) else { throw RedisEnvelopeError("event name longer than 65535 bytes") }
        var buffer = allocator.buffer(capacity: 64 + originBytes + broadcast.event.utf8.count)
        buffer.writeInteger(Self.version)
        var flags: UInt8 = 0
        if case .binary = broadcast.payload { flags |= 1 }
        if broadcast.excluding != nil { flags |= 2 }
        buffer.writeInteger(flags)
        buffer.writeInteger(UInt8(originBytes))
        buffer.writeString(origin)
        buffer.writeInteger(UInt16(broadcast.event.utf8.count))
        buffer.writeString(broadcast.event)
        if let excluding = broadcast.excluding {
            guard excluding.node.utf8.count <= 255 else { throw RedisEnvelopeError("subscriber node id longer than 255 bytes") }
            buffer.writeInteger(UInt8(excluding.node.utf8.count))
            buffer.writeString(excluding.node)
            buffer.writeInteger(excluding.local)
        }
        switch broadcast.payload {
        case .json(let value): JSONWriter.write(value, into: &buffer)
        case .binary(let bytes): buffer.writeImmutableBuffer(bytes)
        }
        return buffer
    }

    /// Only the origin node id, without decoding the rest (to skip this node's own messages cheaply).
    public static func origin(of bytes: ByteBuffer) -> String? {
        var buffer = bytes
        guard buffer.readInteger(as: UInt8.self) == version, buffer.readInteger(as: UInt8.self) != nil,
            let length = buffer.readInteger(as: UInt8.self)
        else { return nil }
        return buffer.readString(length: Int(length))
    }

    /// Decodes an envelope received on the channel of `topic`.
    public init(decoding bytes: ByteBuffer, topic: String) throws(RedisEnvelopeError) {
        var buffer = bytes
        guard let version = buffer.readInteger(as: UInt8.self) else { throw RedisEnvelopeError("empty envelope") }
        guard version == Self.version else { throw RedisEnvelopeError("unknown envelope version \(version)") }
        guard let flags = buffer.readInteger(as: UInt8.self),
            let originLength = buffer.readInteger(as: UInt8.self),
            let origin = buffer.readString(length: Int(originLength)),
            let eventLength = buffer.readInteger(as: UInt16.self),
            let event = buffer.readString(length: Int(eventLength))
        else { throw RedisEnvelopeError("truncated envelope") }
        var excluding: SubscriberID?
        if flags & 2 != 0 {
            guard let nodeLength = buffer.readInteger(as: UInt8.self),
                let node = buffer.readString(length: Int(nodeLength)),
                let local = buffer.readInteger(as: UInt64.self)
            else { throw RedisEnvelopeError("truncated envelope") }
            excluding = SubscriberID(node: node, local: local)
        }
        let payload: Payload
        if flags & 1 != 0 {
            payload = .binary(buffer)
        } else {
            do {
                payload = .json(try JSONParser.parse(buffer))
            } catch {
                throw RedisEnvelopeError("invalid JSON payload: \(error)")
            }
        }
        self.origin = origin
        self.broadcast = Broadcast(topic: topic, event: event, payload: payload, excluding: excluding)
    }
}
