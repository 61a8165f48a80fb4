import NIOCore

/// Server→client WebSocket frame encoding (RFC 6455 §5.2; server frames are never masked).
///
/// Frames are built in place: the body is written with free bytes in front of it, and the header is
/// written into that headroom, so a broadcast's complete frame is produced once and written as-is
/// to every subscriber.
public enum WebSocketFraming {
    public static let opcodeText: UInt8 = 0x1
    public static let opcodeBinary: UInt8 = 0x2
    public static let opcodeClose: UInt8 = 0x8
    public static let opcodePing: UInt8 = 0x9
    public static let opcodePong: UInt8 = 0xA

    /// Room for the longest server frame header (2 + 8 length bytes; server frames are not masked).
    public static let maxHeaderLength = 10

    /// An empty buffer whose reader and writer indices leave `headroom` free bytes in front, so the
    /// body written into it can become a frame in place with `frame(_:opcode:)`.
    public static func bodyBuffer(capacity: Int, headroom: Int = maxHeaderLength) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: headroom + capacity)
        buffer.moveWriterIndex(forwardBy: headroom)
        buffer.moveReaderIndex(forwardBy: headroom)
        return buffer
    }

    /// Turns a body (with at least 10 bytes of headroom before its reader index) into a complete
    /// final frame, by writing the header into the headroom.
    public static func frame(_ body: inout ByteBuffer, opcode: UInt8) {
        let length = body.readableBytes
        let headerLength = length < 126 ? 2 : (length <= 0xFFFF ? 4 : 10)
        if body.readerIndex < headerLength {
            // No headroom: copy into a new buffer.
            var copy = bodyBuffer(capacity: length)
            copy.writeImmutableBuffer(body)
            body = copy
        }
        let start = body.readerIndex - headerLength
        body.setInteger(0x80 | opcode, at: start)
        switch headerLength {
        case 2:
            body.setInteger(UInt8(length), at: start + 1)
        case 4:
            body.setInteger(UInt8(126), at: start + 1)
            body.setInteger(UInt16(length), at: start + 2)
        default:
            body.setInteger(UInt8(127), at: start + 1)
            body.setInteger(UInt64(length), at: start + 2)
        }
        body.moveReaderIndex(to: start)
    }

    /// A complete frame for a body that has no headroom.
    public static func frame(copying body: ByteBuffer, opcode: UInt8) -> ByteBuffer {
        var buffer = bodyBuffer(capacity: body.readableBytes)
        buffer.writeImmutableBuffer(body)
        frame(&buffer, opcode: opcode)
        return buffer
    }

    /// A close frame with a status code and a short reason (truncated to fit the 125-byte limit).
    public static func closeFrame(code: UInt16, reason: String) -> ByteBuffer {
        var body = bodyBuffer(capacity: 2 + 123)
        body.writeInteger(code)
        // At most 123 bytes of reason, cut at a character boundary.
        var reasonBytes = 0
        for scalar in reason.unicodeScalars {
            let size = UTF8.width(scalar)
            guard reasonBytes + size <= 123 else { break }
            reasonBytes += size
        }
        body.writeBytes(reason.utf8.prefix(reasonBytes))
        frame(&body, opcode: opcodeClose)
        return body
    }
}
