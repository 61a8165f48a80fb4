import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Switchboard
import SwitchboardTransports
import Testing

/// The WebSocket connection handler on an `EmbeddedChannel`: no socket, no HTTP, no hub.
@Suite("WebSocket connection handler")
struct WebSocketConnectionHandlerTests {
    let session = RecordingSession()
    let channel = EmbeddedChannel()

    private func install(
        idleTimeout: TimeAmount = .seconds(60),
        pingInterval: TimeAmount? = nil,
        maxMessageSize: Int = 1 << 20
    ) throws -> WebSocketConnectionHandler {
        let handler = WebSocketConnectionHandler(
            eventLoop: channel.eventLoop,
            broadcastFormat: .plainPayload,
            maxMessageSize: maxMessageSize,
            idleTimeout: idleTimeout,
            pingInterval: pingInterval,
            logger: Logger(label: "test")
        ) { [session] _ in session }
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return handler
    }

    private func frame(_ opcode: WebSocketOpcode, _ text: String, fin: Bool = true) -> WebSocketFrame {
        WebSocketFrame(fin: fin, opcode: opcode, data: ByteBuffer(string: text))
    }

    private func written() throws -> [ServerFrame] {
        try channel.outboundBuffers().map(ServerFrame.init)
    }

    @Test("the session starts when the handler is added; messages reach it whole, fragments reassembled")
    func messagesReachTheSession() throws {
        _ = try install()
        #expect(session.started == 1)
        try channel.writeInbound(frame(.text, "{\"a\":1}"))
        try channel.writeInbound(frame(.text, "hel", fin: false))
        try channel.writeInbound(frame(.continuation, "lo ", fin: false))
        try channel.writeInbound(frame(.continuation, "world"))
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: [1, 2, 3])))
        #expect(session.texts == ["{\"a\":1}", "hello world"])
        #expect(session.binaries == [[1, 2, 3]])
    }

    @Test("a ping is answered with a pong carrying its data; a continuation without a message closes with 1002")
    func pingAndProtocolErrors() throws {
        _ = try install()
        try channel.writeInbound(frame(.ping, "are you there"))
        #expect(try written() == [ServerFrame(first: 0x8A, payload: Array("are you there".utf8))])
        try channel.writeInbound(frame(.continuation, "stray"))
        let close = try written()
        #expect(close.first?.closeCode == 1002)
        #expect(close.first?.text == "continuation frame without a message")
    }

    @Test("a client's close code is echoed; a code a peer may not send is answered with 1000")
    func closeEcho() throws {
        _ = try install()
        var payload = ByteBuffer()
        payload.writeInteger(UInt16(1005))
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload))
        #expect(try written().first?.closeCode == 1000)
    }

    @Test("a message over the size limit closes with 1009, also when it comes in fragments")
    func messageTooBig() throws {
        _ = try install(maxMessageSize: 8)
        try channel.writeInbound(frame(.text, "12345", fin: false))
        try channel.writeInbound(frame(.continuation, "67890"))
        #expect(try written().first?.closeCode == 1009)
        #expect(session.texts.isEmpty)
    }

    @Test("the session's messages go out as frames; a session's close reason closes the connection with it")
    func sendAndSessionVerdict() throws {
        let handler = try install()
        handler.send(EncodedFrame(bytes: ByteBuffer(string: "hi"), isBinary: false))
        handler.flush()
        #expect(try written() == [ServerFrame(first: 0x81, payload: Array("hi".utf8))])
        session.verdict = CloseReason(code: 1007, reason: "invalid message: x")
        try channel.writeInbound(frame(.text, "x"))
        let close = try written()
        #expect(close.first?.closeCode == 1007)
        #expect(close.first?.text == "invalid message: x")
    }

    @Test("silence past the idle timeout closes with 1002; with pings on, a silent client is pinged first")
    func idleTimeoutAndPings() throws {
        _ = try install(idleTimeout: .seconds(10), pingInterval: .seconds(4))
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(try written() == [ServerFrame(first: 0x89, payload: [])])
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .pong, data: ByteBuffer()))  // a read: not idle
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(try written() == [ServerFrame(first: 0x89, payload: [])])
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        let frames = try written()
        #expect(frames.last?.closeCode == 1002)
        #expect(frames.last?.text == "idle timeout")
    }

    @Test("shutdown closes with 1012; the session is told once that the connection is gone")
    func quiesceAndClose() throws {
        _ = try install()
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(try written().first?.closeCode == 1012)
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(session.closedCount == 1)
    }

    @Test("a client that stops reading is closed once the queue passes its limit, without a close frame")
    func slowConsumer() throws {
        let handler = try install()
        handler.sendPreEncoded(ByteBuffer(string: "queued"))
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        // The unflushed broadcast was written out first; then the connection closed.
        #expect(try channel.outboundBuffers().map { String(buffer: $0) } == ["queued"])
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(session.closedCount == 1)
    }
}
