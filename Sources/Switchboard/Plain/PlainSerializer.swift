import NIOCore

/// How a plain client's own messages (`PlainClient.send`) are written for its transport.
public enum PlainSerializer: Sendable {
    /// A text or binary WebSocket frame per message.
    case webSocket
    /// A Server-Sent Event per text message (unnamed, so `onmessage` gets it; a text with line
    /// breaks becomes several `data:` lines, which the client joins again). Binary messages have
    /// no SSE form and are not sent.
    case eventStream

    /// The serializer for messages on `transport`.
    public static func `for`(_ transport: any Transport) -> PlainSerializer {
        transport.isUnidirectional ? .eventStream : .webSocket
    }

    public func encode(text: ByteBuffer) -> EncodedFrame? {
        switch self {
        case .webSocket:
            return EncodedFrame(bytes: text, isBinary: false)
        case .eventStream:
            var event = ByteBufferAllocator().buffer(capacity: text.readableBytes + 8)
            event.writeStaticString("data: ")
            var rest = text
            while let newline = rest.readableBytesView.firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) {
                var line = rest.readSlice(length: newline - rest.readerIndex)!
                rest.moveReaderIndex(forwardBy: 1)
                event.writeBuffer(&line)
                event.writeStaticString("\ndata: ")
            }
            event.writeBuffer(&rest)
            event.writeStaticString("\n\n")
            return EncodedFrame(bytes: event, isBinary: false)
        }
    }

    public func encode(binary: ByteBuffer) -> EncodedFrame? {
        switch self {
        case .webSocket: return EncodedFrame(bytes: binary, isBinary: true)
        case .eventStream: return nil
        }
    }
}
