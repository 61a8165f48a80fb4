import NIOCore

/// Why an inbound frame could not be read as a Phoenix message.
public enum PhoenixDecodeError: Error, Sendable, Equatable {
    /// Text that is not JSON, or JSON of the wrong shape.
    case invalidMessage(String)
    /// A binary frame this serializer does not understand.
    case unsupportedBinary(String)
}

/// An encoded server→client frame body and whether it must travel as a binary frame.
public struct EncodedFrame: Sendable {
    /// The frame body; the reader index leaves `PhoenixSerializer.headroom` bytes in front for a transport header.
    public var bytes: ByteBuffer
    public var isBinary: Bool

    public init(bytes: ByteBuffer, isBinary: Bool) {
        self.bytes = bytes
        self.isBinary = isBinary
    }
}

/// The Phoenix Channels serializers: V1 (JSON objects), V2 (JSON arrays) and V2 binary frames.
public enum PhoenixSerializer: String, Sendable, Hashable {
    case v1 = "1.0.0"
    case v2 = "2.0.0"

    /// Bytes left free in front of every encoded frame, so a transport can prepend its header
    /// (a WebSocket header is at most 10 bytes for server frames) without copying.
    public static let headroom = 14

    /// Picks the serializer for a `vsn` connect parameter: absent ⇒ V1; `1.0.x` ⇒ V1; `2.0.x` ⇒ V2;
    /// anything else ⇒ `nil` (the connection must be refused).
    public static func negotiate(vsn: String?) -> PhoenixSerializer? {
        guard let vsn else { return .v1 }
        let parts = vsn.split(separator: ".", omittingEmptySubsequences: false)
        // MAJOR.MINOR.PATCH, ASCII digits, no leading zeros (as Elixir's Version.parse requires).
        guard parts.count == 3,
            parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } && ($0.count == 1 || $0.first != "0") })
        else { return nil }
        // Pre-release/build suffixes are not accepted; Phoenix's requirement `~> X.0.0` is X.0.*.
        guard let major = Int(parts[0]), let minor = Int(parts[1]), Int(parts[2]) != nil else { return nil }
        switch (major, minor) {
        case (1, 0): return .v1
        case (2, 0): return .v2
        default: return nil
        }
    }

    // MARK: Decoding

    /// Decodes a text frame (or a binary frame that holds JSON text): a JSON object on V1, a JSON
    /// array on V2; the other version's shape is an invalid message.
    public func decode(text buffer: ByteBuffer) throws(PhoenixDecodeError) -> Message {
        let value: JSONValue
        do {
            value = try JSONParser.parse(buffer)
        } catch {
            throw .invalidMessage("malformed JSON")
        }
        switch value {
        case .object(let fields):
            // Each socket reads only its own vsn's shape (protocol doc §19): accepting the other
            // version's frames would hide client bugs and make two encodings reachable per socket.
            guard self == .v1 else { throw .invalidMessage("vsn 2.0.0 messages are JSON arrays, not objects") }
            guard let topic = fields["topic"]?.stringValue else { throw .invalidMessage("topic must be a string") }
            guard let event = fields["event"]?.stringValue else { throw .invalidMessage("event must be a string") }
            guard let payload = fields["payload"] else { throw .invalidMessage("payload is missing") }
            guard let ref = fields["ref"] else { throw .invalidMessage("ref is missing") }
            return Message(joinRef: fields["join_ref"] ?? .null, ref: ref, topic: topic, event: event, payload: .json(payload))
        case .array(let elements):
            guard self == .v2 else { throw .invalidMessage("vsn 1.0.0 messages are JSON objects, not arrays") }
            guard elements.count >= 5 else { throw .invalidMessage("a message array needs 5 elements") }
            guard let topic = elements[2].stringValue else { throw .invalidMessage("topic must be a string") }
            guard let event = elements[3].stringValue else { throw .invalidMessage("event must be a string") }
            return Message(joinRef: elements[0], ref: elements[1], topic: topic, event: event, payload: .json(elements[4]))
        default:
            throw .invalidMessage("a message must be a JSON object or array")
        }
    }

    /// Decodes a binary frame: V2 kind 0 (client push), or JSON text sent in a binary frame.
    public func decode(binary buffer: ByteBuffer) throws(PhoenixDecodeError) -> Message {
        guard let kind = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else {
            throw .unsupportedBinary("empty binary frame")
        }
        let firstNonSpace = buffer.readableBytesView.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
        if firstNonSpace == UInt8(ascii: "{") || firstNonSpace == UInt8(ascii: "[") {
            do {
                return try decode(text: buffer)
            } catch {
                throw .unsupportedBinary("binary frame is neither JSON nor a Phoenix binary message")
            }
        }
        guard self == .v2 else { throw .unsupportedBinary("binary messages need vsn 2.0.0") }
        guard kind == 0 else { throw .unsupportedBinary("unknown binary message kind \(kind)") }
        var b = buffer
        b.moveReaderIndex(forwardBy: 1)
        guard let lengths = b.readBytes(length: 4) else { throw .unsupportedBinary("truncated binary header") }
        var strings: [String] = []
        for length in lengths {
            guard let s = b.readString(length: Int(length)) else { throw .unsupportedBinary("truncated binary header") }
            strings.append(s)
        }
        // A zero-length join_ref or ref means null.
        return Message(
            joinRef: strings[0].isEmpty ? .null : .string(strings[0]),
            ref: strings[1].isEmpty ? .null : .string(strings[1]),
            topic: strings[2],
            event: strings[3],
            payload: .binary(b)
        )
    }

    // MARK: Encoding

    /// Encodes a reply (`phx_reply`) to the message whose ref was `ref`.
    public func encodeReply(joinRef: JSONValue, ref: JSONValue, topic: String, status: String, response: Payload) -> EncodedFrame? {
        switch response {
        case .json(let json):
            return encodeJSON(
                joinRef: joinRef,
                ref: ref,
                topic: topic,
                event: PhoenixEvent.reply,
                payload: .object(["status": .string(status), "response": json])
            )
        case .binary(let bytes):
            guard self == .v2 else { return nil }
            return encodeBinary(kind: 1, strings: [Self.refText(joinRef), Self.refText(ref), topic, status], payload: bytes)
        }
    }

    /// Encodes a push from a channel to its own client (`ref` is null).
    public func encodePush(joinRef: JSONValue, topic: String, event: String, payload: Payload) -> EncodedFrame? {
        switch payload {
        case .json(let json):
            return encodeJSON(joinRef: joinRef, ref: .null, topic: topic, event: event, payload: json)
        case .binary(let bytes):
            guard self == .v2 else { return nil }
            return encodeBinary(kind: 0, strings: [Self.refText(joinRef), topic, event], payload: bytes)
        }
    }

    /// Encodes a fast-lane broadcast (`join_ref` and `ref` null), the same bytes for every
    /// subscriber; JSON text the broadcast already carries (presence diffs) is written as it is.
    public func encodeBroadcast(_ broadcast: Broadcast) -> EncodedFrame? {
        // A message of a topic with history carries its position as the ref, for the client to keep.
        let ref: JSONValue = broadcast.streamPosition.map { .string($0.description) } ?? .null
        if let text = broadcast.encodedJSON {
            return encodeJSON(joinRef: .null, ref: ref, topic: broadcast.topic, event: broadcast.event, payloadText: text)
        }
        if !ref.isNull, case .json(let json) = broadcast.payload {
            return encodeJSON(joinRef: .null, ref: ref, topic: broadcast.topic, event: broadcast.event, payload: json)
        }
        return encodeBroadcast(topic: broadcast.topic, event: broadcast.event, payload: broadcast.payload)
    }

    /// Encodes a fast-lane broadcast (`join_ref` and `ref` null), the same bytes for every subscriber.
    public func encodeBroadcast(topic: String, event: String, payload: Payload) -> EncodedFrame? {
        switch payload {
        case .json(let json):
            return encodeJSON(joinRef: .null, ref: .null, topic: topic, event: event, payload: json)
        case .binary(let bytes):
            guard self == .v2 else { return nil }
            return encodeBinary(kind: 2, strings: [topic, event], payload: bytes)
        }
    }

    func encodeJSON(joinRef: JSONValue, ref: JSONValue, topic: String, event: String, payload: JSONValue) -> EncodedFrame {
        encodeJSON(joinRef: joinRef, ref: ref, topic: topic, event: event, payloadText: nil, payload: payload)
    }

    /// A frame whose payload is JSON text already encoded (written as it is).
    func encodeJSON(joinRef: JSONValue, ref: JSONValue, topic: String, event: String, payloadText: ByteBuffer) -> EncodedFrame {
        encodeJSON(joinRef: joinRef, ref: ref, topic: topic, event: event, payloadText: payloadText, payload: .null)
    }

    private func encodeJSON(
        joinRef: JSONValue,
        ref: JSONValue,
        topic: String,
        event: String,
        payloadText: ByteBuffer?,
        payload: JSONValue
    ) -> EncodedFrame {
        let capacity = 64 + topic.utf8.count + event.utf8.count + (payloadText?.readableBytes ?? 0)
        var buffer = WebSocketFraming.bodyBuffer(capacity: capacity, headroom: Self.headroom)
        var sink = BufferSink(buffer: buffer)
        buffer = ByteBuffer()
        func writePayload(_ sink: inout BufferSink) {
            if var text = payloadText {
                sink.buffer.writeBuffer(&text)
            } else {
                sink.write(payload)
            }
        }
        switch self {
        case .v1:
            // Exactly four keys: V1 clients (phx-events) break on any other key such as join_ref.
            sink.append("{\"topic\":")
            sink.writeString(topic)
            sink.append(",\"event\":")
            sink.writeString(event)
            sink.append(",\"payload\":")
            writePayload(&sink)
            sink.append(",\"ref\":")
            sink.write(ref)
            sink.append(UInt8(ascii: "}"))
        case .v2:
            sink.append(UInt8(ascii: "["))
            sink.write(joinRef)
            sink.append(UInt8(ascii: ","))
            sink.write(ref)
            sink.append(UInt8(ascii: ","))
            sink.writeString(topic)
            sink.append(UInt8(ascii: ","))
            sink.writeString(event)
            sink.append(UInt8(ascii: ","))
            writePayload(&sink)
            sink.append(UInt8(ascii: "]"))
        }
        return EncodedFrame(bytes: sink.buffer, isBinary: false)
    }

    func encodeBinary(kind: UInt8, strings: [String], payload: ByteBuffer) -> EncodedFrame? {
        // Binary header strings are limited to 255 bytes each.
        guard strings.allSatisfy({ $0.utf8.count <= 255 }) else { return nil }
        var buffer = WebSocketFraming.bodyBuffer(capacity: 1 + strings.count + payload.readableBytes + 64, headroom: Self.headroom)
        buffer.writeInteger(kind)
        for s in strings { buffer.writeInteger(UInt8(s.utf8.count)) }
        for s in strings { buffer.writeString(s) }
        var p = payload
        buffer.writeBuffer(&p)
        return EncodedFrame(bytes: buffer, isBinary: true)
    }

    /// The text form of a ref in a binary header: strings as they are, numbers in decimal, null empty.
    static func refText(_ ref: JSONValue) -> String {
        switch ref {
        case .null: return ""
        case .string(let s): return s
        default: return ref.description
        }
    }
}
