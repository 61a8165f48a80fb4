import NIOCore
import Testing

@testable import Switchboard

@Suite("WebSocketFraming")
struct WebSocketFramingTests {
    /// A body of `count` bytes (0, 1, 2, … mod 251) with `headroom` free bytes before its reader index.
    func body(count: Int, headroom: Int = PhoenixSerializer.headroom) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: headroom + count)
        buffer.moveWriterIndex(forwardBy: headroom)
        buffer.moveReaderIndex(forwardBy: headroom)
        buffer.writeBytes((0..<count).map { UInt8($0 % 251) })
        return buffer
    }

    func payloadBytes(_ count: Int) -> [UInt8] { (0..<count).map { UInt8($0 % 251) } }

    @Test(arguments: [
        (0, WebSocketFraming.opcodeText, "81 00"),
        (1, WebSocketFraming.opcodeBinary, "82 01"),
        (125, WebSocketFraming.opcodeText, "81 7d"),
        (126, WebSocketFraming.opcodeText, "81 7e 00 7e"),
        (127, WebSocketFraming.opcodeBinary, "82 7e 00 7f"),
        (65535, WebSocketFraming.opcodeBinary, "82 7e ff ff"),
        (65536, WebSocketFraming.opcodeText, "81 7f 00 00 00 00 00 01 00 00"),
        (70000, WebSocketFraming.opcodeBinary, "82 7f 00 00 00 00 00 01 11 70"),
    ])
    func frameInHeadroom(_ length: Int, _ opcode: UInt8, _ header: String) {
        var buffer = body(count: length)
        let writerIndex = buffer.writerIndex
        WebSocketFraming.frame(&buffer, opcode: opcode)
        let expectedHeader = hexBytes(header)
        #expect(hexString(buffer.readableBytesView.prefix(expectedHeader.count)) == header)
        #expect(buffer.readableBytes == expectedHeader.count + length)
        #expect(buffer.writerIndex == writerIndex, "the header goes into the headroom, the body is not moved")
        #expect(Array(buffer.readableBytesView.dropFirst(expectedHeader.count)) == payloadBytes(length))
        // Server frames are never masked: the mask bit (0x80 of byte 1) is clear.
        #expect(buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self).map { $0 & 0x80 } == 0)
        // FIN set, RSV clear.
        #expect(buffer.getInteger(at: buffer.readerIndex, as: UInt8.self).map { $0 & 0xF0 } == 0x80)
    }

    @Test(arguments: [0, 125, 126, 65535, 65536])
    func frameWithoutHeadroomCopies(_ length: Int) {
        var withHeadroom = body(count: length)
        WebSocketFraming.frame(&withHeadroom, opcode: WebSocketFraming.opcodeBinary)

        var noHeadroom = body(count: length, headroom: 0)
        WebSocketFraming.frame(&noHeadroom, opcode: WebSocketFraming.opcodeBinary)
        #expect(noHeadroom.readableArray == withHeadroom.readableArray)

        // Headroom smaller than the header it needs.
        var small = body(count: length, headroom: 3)
        WebSocketFraming.frame(&small, opcode: WebSocketFraming.opcodeBinary)
        #expect(small.readableArray == withHeadroom.readableArray)

        let copied = WebSocketFraming.frame(copying: ByteBuffer(bytes: payloadBytes(length)), opcode: WebSocketFraming.opcodeBinary)
        #expect(copied.readableArray == withHeadroom.readableArray)
    }

    @Test func controlOpcodes() {
        #expect(WebSocketFraming.frame(copying: ByteBuffer(bytes: [0x61]), opcode: WebSocketFraming.opcodePing).readableArray == [0x89, 0x01, 0x61])
        #expect(WebSocketFraming.frame(copying: ByteBuffer(), opcode: WebSocketFraming.opcodePong).readableArray == [0x8A, 0x00])
    }

    // MARK: Close frames

    @Test func closeFrameWithReason() {
        let frame = WebSocketFraming.closeFrame(code: 1000, reason: "normal")
        #expect(frame.readableArray == [0x88, 0x08, 0x03, 0xE8] + utf8("normal"))
    }

    @Test func closeFrameWithEmptyReason() {
        #expect(WebSocketFraming.closeFrame(code: 1001, reason: "").readableArray == [0x88, 0x02, 0x03, 0xE9])
        #expect(WebSocketFraming.closeFrame(code: 4000, reason: "").readableArray == [0x88, 0x02, 0x0F, 0xA0])
    }

    func closeBody(_ frame: ByteBuffer) -> (code: UInt16, reason: [UInt8])? {
        let bytes = frame.readableArray
        guard bytes.count >= 4, bytes[0] == 0x88, Int(bytes[1]) == bytes.count - 2, bytes[1] <= 125 else { return nil }
        return (UInt16(bytes[2]) << 8 | UInt16(bytes[3]), Array(bytes[4...]))
    }

    @Test func closeReasonOfExactly123BytesIsKept() throws {
        let reason = String(repeating: "a", count: 123)
        let body = try #require(closeBody(WebSocketFraming.closeFrame(code: 1008, reason: reason)))
        #expect(body.code == 1008)
        #expect(body.reason == utf8(reason))
    }

    @Test func longASCIIReasonIsTruncatedTo123Bytes() throws {
        let reason = String(repeating: "abcdefghij", count: 30)
        let frame = WebSocketFraming.closeFrame(code: 1011, reason: reason)
        #expect(frame.readableArray.prefix(4) == [0x88, 0x7D, 0x03, 0xF3])
        let body = try #require(closeBody(frame))
        #expect(body.reason == Array(utf8(reason).prefix(123)))
    }

    @Test(arguments: [
        // (ASCII prefix length, multi-byte character, expected reason byte count)
        (121, "é", 123),  // 121 + 2 = 123 fits
        (122, "é", 122),  // 122 + 2 = 124 does not fit: cut before é
        (120, "€", 123),  // 120 + 3 fits
        (121, "€", 121),  // 121 + 3 = 124: cut before €
        (122, "€", 122),
        (119, "😀", 123),  // 119 + 4 fits
        (120, "😀", 120),  // 120 + 4 = 124: cut before 😀
        (122, "😀", 122),
    ])
    func truncationNeverSplitsAUTF8Character(_ prefix: Int, _ character: String, _ expectedCount: Int) throws {
        let reason = String(repeating: "x", count: prefix) + character + "tail"
        let body = try #require(closeBody(WebSocketFraming.closeFrame(code: 1000, reason: reason)))
        #expect(body.reason.count == expectedCount)
        #expect(body.reason == Array(utf8(reason).prefix(expectedCount)))
        #expect(String(validating: body.reason, as: UTF8.self) != nil, "truncated reason must remain valid UTF-8")
    }

    @Test func allMultiByteReasonIsCutAtCharacterBoundary() throws {
        // 100 × "日" = 300 bytes; 41 characters = 123 bytes.
        let reason = String(repeating: "日", count: 100)
        let body = try #require(closeBody(WebSocketFraming.closeFrame(code: 1000, reason: reason)))
        #expect(body.reason == utf8(String(repeating: "日", count: 41)))
        // 100 × "é" = 200 bytes; 61 characters = 122 bytes (62 would be 124).
        let e = try #require(closeBody(WebSocketFraming.closeFrame(code: 1000, reason: String(repeating: "é", count: 100))))
        #expect(e.reason == utf8(String(repeating: "é", count: 61)))
    }
}
