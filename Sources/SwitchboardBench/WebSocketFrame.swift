import NIOCore

/// RFC 6455 framing for a client: frames it sends are masked, frames it reads are not (a masked
/// server frame is tolerated and unmasked). No extensions are negotiated, so RSV bits must be 0.
enum WebSocketFrame {
    static let continuation: UInt8 = 0x0
    static let text: UInt8 = 0x1
    static let binary: UInt8 = 0x2
    static let close: UInt8 = 0x8
    static let ping: UInt8 = 0x9
    static let pong: UInt8 = 0xA

    /// One frame read off the wire; `payload` is a slice of the read buffer (no copy).
    struct Frame {
        var fin: Bool
        var opcode: UInt8
        var payload: ByteBuffer
    }

    enum ReadResult {
        case frame(Frame)
        case incomplete
        case invalid(String)
    }

    /// Reads the next complete frame from `buffer`, consuming it; leaves a partial frame in place.
    static func read(from buffer: inout ByteBuffer, maxPayload: Int) -> ReadResult {
        let start = buffer.readerIndex
        let available = buffer.readableBytes
        guard available >= 2,
            let b0 = buffer.getInteger(at: start, as: UInt8.self),
            let b1 = buffer.getInteger(at: start + 1, as: UInt8.self)
        else { return .incomplete }
        guard b0 & 0x70 == 0 else { return .invalid("frame with RSV bits set (no extension was negotiated)") }
        var header = 2
        var length = Int(b1 & 0x7F)
        if length == 126 {
            guard available >= 4, let extended = buffer.getInteger(at: start + 2, as: UInt16.self) else { return .incomplete }
            length = Int(extended)
            header = 4
        } else if length == 127 {
            guard available >= 10, let extended = buffer.getInteger(at: start + 2, as: UInt64.self) else { return .incomplete }
            guard extended <= UInt64(maxPayload) else { return .invalid("frame of \(extended) bytes (limit \(maxPayload))") }
            length = Int(extended)
            header = 10
        }
        guard length <= maxPayload else { return .invalid("frame of \(length) bytes (limit \(maxPayload))") }
        let masked = b1 & 0x80 != 0
        if masked { header += 4 }
        guard available >= header + length else { return .incomplete }
        let maskKey = masked ? buffer.getInteger(at: start + header - 4, as: UInt32.self) ?? 0 : 0
        buffer.moveReaderIndex(forwardBy: header)
        var payload = buffer.readSlice(length: length)!
        if masked {
            var unmasked = ByteBuffer()
            unmasked.reserveCapacity(length)
            payload.withUnsafeReadableBytes { bytes in
                writeXORed(bytes, maskKey: maskKey, into: &unmasked)
            }
            payload = unmasked
        }
        return .frame(Frame(fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, payload: payload))
    }

    /// Appends one final (FIN) client frame with `payload` masked by `maskKey`.
    static func writeMasked(opcode: UInt8, payload: UnsafeRawBufferPointer, maskKey: UInt32, into buffer: inout ByteBuffer) {
        let length = payload.count
        buffer.writeInteger(0x80 | opcode)
        if length < 126 {
            buffer.writeInteger(UInt8(0x80 | length))
        } else if length <= 0xFFFF {
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(length))
        } else {
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(length))
        }
        buffer.writeInteger(maskKey)
        writeXORed(payload, maskKey: maskKey, into: &buffer)
    }

    static func writeMasked(opcode: UInt8, payload: ByteBuffer, into buffer: inout ByteBuffer) {
        let key = UInt32.random(in: 0...UInt32.max)
        payload.withUnsafeReadableBytes { writeMasked(opcode: opcode, payload: $0, maskKey: key, into: &buffer) }
    }

    static func writeMasked(opcode: UInt8, payload: [UInt8], into buffer: inout ByteBuffer) {
        let key = UInt32.random(in: 0...UInt32.max)
        payload.withUnsafeBytes { writeMasked(opcode: opcode, payload: $0, maskKey: key, into: &buffer) }
    }

    /// The mask bytes are the key in network order; byte i of the payload uses mask byte i % 4.
    private static func writeXORed(_ bytes: UnsafeRawBufferPointer, maskKey: UInt32, into buffer: inout ByteBuffer) {
        let length = bytes.count
        guard length > 0 else { return }
        let mask: (UInt8, UInt8, UInt8, UInt8) = (
            UInt8(truncatingIfNeeded: maskKey >> 24), UInt8(truncatingIfNeeded: maskKey >> 16),
            UInt8(truncatingIfNeeded: maskKey >> 8), UInt8(truncatingIfNeeded: maskKey)
        )
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
            for i in 0..<length {
                let m: UInt8
                switch i & 3 {
                case 0: m = mask.0
                case 1: m = mask.1
                case 2: m = mask.2
                default: m = mask.3
                }
                out[i] = bytes[i] ^ m
            }
            return length
        }
    }
}
