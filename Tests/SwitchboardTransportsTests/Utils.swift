import NIOCore
import NIOEmbedded
import Switchboard

/// A session that records what its transport hands it.
final class RecordingSession: Session {
    var started = 0
    var texts: [String] = []
    var binaries: [[UInt8]] = []
    var closedCount = 0
    /// Returned from `receive(text:)` (a session's verdict on a message).
    var verdict: CloseReason?

    func start() { started += 1 }
    func receive(text: ByteBuffer) -> CloseReason? {
        texts.append(String(buffer: text))
        return verdict
    }
    func receive(binary: ByteBuffer) -> CloseReason? {
        binaries.append(Array(binary.readableBytesView))
        return nil
    }
    func transportClosed() { closedCount += 1 }
}

extension EmbeddedChannel {
    /// Every outbound buffer written so far, in order.
    func outboundBuffers() throws -> [ByteBuffer] {
        var buffers: [ByteBuffer] = []
        while let buffer = try readOutbound(as: ByteBuffer.self) { buffers.append(buffer) }
        return buffers
    }
}

/// A server-to-client WebSocket frame split into opcode byte, payload length and payload
/// (server frames are never masked; payloads here are < 126 bytes).
struct ServerFrame: Equatable, CustomStringConvertible {
    var first: UInt8
    var payload: [UInt8]

    init(_ buffer: ByteBuffer) {
        let bytes = Array(buffer.readableBytesView)
        first = bytes[0]
        payload = Array(bytes.dropFirst(2))
        precondition(Int(bytes[1]) == payload.count, "a short unmasked frame")
    }

    init(first: UInt8, payload: [UInt8]) {
        self.first = first
        self.payload = payload
    }

    /// A close frame's code.
    var closeCode: UInt16? {
        guard first == 0x88, payload.count >= 2 else { return nil }
        return UInt16(payload[0]) << 8 | UInt16(payload[1])
    }

    var text: String { String(decoding: payload.count >= 2 && first == 0x88 ? Array(payload.dropFirst(2)) : payload, as: UTF8.self) }

    var description: String { "frame 0x\(String(first, radix: 16)) \(text)" }
}
