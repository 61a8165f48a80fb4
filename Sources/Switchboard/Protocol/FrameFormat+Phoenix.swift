import NIOCore

extension FrameFormat {
    /// Phoenix V1 (JSON objects) in WebSocket frames; binary payloads are not sent to V1 clients.
    public static let phoenixV1WebSocket = FrameFormat(name: "phoenix-v1-ws") { broadcast in
        PhoenixSerializer.v1.encodeBroadcast(topic: broadcast.topic, event: broadcast.event, payload: broadcast.payload)
            .map { webSocketFrame($0) }
    }

    /// Phoenix V2 (JSON arrays, binary kind 2) in WebSocket frames.
    public static let phoenixV2WebSocket = FrameFormat(name: "phoenix-v2-ws") { broadcast in
        PhoenixSerializer.v2.encodeBroadcast(topic: broadcast.topic, event: broadcast.event, payload: broadcast.payload)
            .map { webSocketFrame($0) }
    }

    /// The complete WebSocket frame for an encoded message.
    public static func webSocketFrame(_ frame: EncodedFrame) -> ByteBuffer {
        var bytes = frame.bytes
        WebSocketFraming.frame(&bytes, opcode: frame.isBinary ? WebSocketFraming.opcodeBinary : WebSocketFraming.opcodeText)
        return bytes
    }
}
