import NIOCore

extension FrameFormat {
    /// Plain WebSocket: each broadcast's payload as it is — a text frame holding the JSON payload,
    /// or a binary frame for a binary payload (like nchan's WebSocket subscribers).
    public static let plainPayload = FrameFormat(name: "plain-ws") { broadcast in
        switch broadcast.payload {
        case .json(let json):
            var body = WebSocketFraming.bodyBuffer(capacity: 128 + (broadcast.encodedJSON?.readableBytes ?? 0))
            if var text = broadcast.encodedJSON {
                body.writeBuffer(&text)
            } else {
                JSONWriter.write(json, into: &body)
            }
            WebSocketFraming.frame(&body, opcode: WebSocketFraming.opcodeText)
            return body
        case .binary(let bytes):
            return WebSocketFraming.frame(copying: bytes, opcode: WebSocketFraming.opcodeBinary)
        }
    }

    /// Plain WebSocket with an envelope: `{"event": …, "payload": …}` in a text frame (binary
    /// payloads are sent as binary frames without the envelope).
    public static let plainEnvelope = FrameFormat(name: "plain-ws-envelope") { broadcast in
        switch broadcast.payload {
        case .json(let json):
            var body = WebSocketFraming.bodyBuffer(capacity: 128 + (broadcast.encodedJSON?.readableBytes ?? 0))
            if var text = broadcast.encodedJSON {
                body.writeStaticString("{\"event\":")
                JSONWriter.writeString(broadcast.event, into: &body)
                body.writeStaticString(",\"payload\":")
                body.writeBuffer(&text)
                body.writeStaticString("}")
            } else {
                JSONWriter.write(["event": .string(broadcast.event), "payload": json], into: &body)
            }
            WebSocketFraming.frame(&body, opcode: WebSocketFraming.opcodeText)
            return body
        case .binary(let bytes):
            return WebSocketFraming.frame(copying: bytes, opcode: WebSocketFraming.opcodeBinary)
        }
    }

    /// A plain-WebSocket form that turns each broadcast into a JSON value of your own (or skips it
    /// with `nil`), encoded once for every subscriber using this format.
    public static func plainJSON(name: String, transform: @escaping @Sendable (Broadcast) -> JSONValue?) -> FrameFormat {
        FrameFormat(name: name) { broadcast in
            guard let value = transform(broadcast) else { return nil }
            var body = WebSocketFraming.bodyBuffer(capacity: 128)
            JSONWriter.write(value, into: &body)
            WebSocketFraming.frame(&body, opcode: WebSocketFraming.opcodeText)
            return body
        }
    }
}
