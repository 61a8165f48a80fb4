import NIOCore

extension FrameFormat {
    /// Phoenix V1 (JSON objects) in WebSocket frames; binary payloads are not sent to V1 clients.
    public static let phoenixV1WebSocket = FrameFormat(name: "phoenix-v1-ws") { broadcast in
        PhoenixSerializer.v1.encodeBroadcast(broadcast)
            .map { webSocketFrame($0) }
    }

    /// Phoenix V2 (JSON arrays, binary kind 2) in WebSocket frames.
    public static let phoenixV2WebSocket = FrameFormat(name: "phoenix-v2-ws") { broadcast in
        PhoenixSerializer.v2.encodeBroadcast(broadcast)
            .map { webSocketFrame($0) }
    }

    /// The complete WebSocket frame for an encoded message.
    public static func webSocketFrame(_ frame: EncodedFrame) -> ByteBuffer {
        var bytes = frame.bytes
        WebSocketFraming.frame(&bytes, opcode: frame.isBinary ? WebSocketFraming.opcodeBinary : WebSocketFraming.opcodeText)
        return bytes
    }
}

extension FrameFormat {
    /// Phoenix V1 text as a JSON string literal: long-poll answers carry each message as a string.
    public static let phoenixV1LongPoll = FrameFormat(name: "phoenix-v1-longpoll") { broadcast in
        PhoenixSerializer.v1.encodeBroadcast(broadcast)
            .flatMap { longPollMessage($0) }
    }

    /// Phoenix V2 text as a JSON string literal (binary broadcasts are not sent over long-poll).
    public static let phoenixV2LongPoll = FrameFormat(name: "phoenix-v2-longpoll") { broadcast in
        PhoenixSerializer.v2.encodeBroadcast(broadcast)
            .flatMap { longPollMessage($0) }
    }

    /// A text message as the JSON string a long-poll answer lists it as; nil for binary messages.
    public static func longPollMessage(_ frame: EncodedFrame) -> ByteBuffer? {
        guard !frame.isBinary else { return nil }
        var literal = ByteBufferAllocator().buffer(capacity: frame.bytes.readableBytes + 16)
        JSONWriter.writeString(String(buffer: frame.bytes), into: &literal)
        return literal
    }
}
