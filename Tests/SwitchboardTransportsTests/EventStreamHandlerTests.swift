import Logging
import NIOCore
import NIOEmbedded
import Switchboard
import SwitchboardTransports
import Testing

/// The Server-Sent Events handler on an `EmbeddedChannel`.
@Suite("Server-Sent Events handler")
struct EventStreamHandlerTests {
    let session = RecordingSession()
    let channel = EmbeddedChannel()

    private func handler(keepAlive: TimeAmount = .seconds(15)) throws -> EventStreamHandler {
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return EventStreamHandler(eventLoop: channel.eventLoop, keepAlive: keepAlive, logger: Logger(label: "test"))
    }

    private func written() throws -> [String] {
        try channel.outboundBuffers().map { String(buffer: $0) }
    }

    @Test("what the session sends before the stream opens goes out first, in order; binary messages have no SSE form")
    func pendingBeforeOpen() throws {
        let stream = try handler()
        stream.attach(session)
        stream.send(EncodedFrame(bytes: ByteBuffer(string: "event: a\ndata: 1\n\n"), isBinary: false))
        stream.send(EncodedFrame(bytes: ByteBuffer(bytes: [0, 1]), isBinary: true))
        stream.sendPreEncoded(ByteBuffer(string: "event: b\ndata: 2\n\n"))
        #expect(!stream.isOpen)
        try channel.pipeline.syncOperations.addHandler(stream)
        #expect(stream.isOpen)
        #expect(try written() == ["event: a\ndata: 1\n\n", "event: b\ndata: 2\n\n"])
    }

    @Test("an idle stream gets a keep-alive comment every interval")
    func keepAlive() throws {
        let stream = try handler(keepAlive: .seconds(5))
        try channel.pipeline.syncOperations.addHandler(stream)
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(try written() == [": keep-alive\n\n"])
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(try written() == [": keep-alive\n\n"])
    }

    @Test("a close ends the stream with a switchboard:close event carrying the code and reason, and ends the session")
    func closeEvent() throws {
        let stream = try handler()
        stream.attach(session)
        try channel.pipeline.syncOperations.addHandler(stream)
        stream.close(CloseReason(code: 1000, reason: "channel closed"))
        let last = try written()
        #expect(last.count == 1)
        let prefix = "event: switchboard:close\ndata: "
        #expect(last.first?.hasPrefix(prefix) == true && last.first?.hasSuffix("\n\n") == true)
        let data = try JSONParser.parse(ByteBuffer(string: String(last.first?.dropFirst(prefix.count).dropLast(2) ?? "")))
        #expect(data == ["code": 1000, "reason": "channel closed"])
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(session.closedCount == 1)
        stream.send(EncodedFrame(bytes: ByteBuffer(string: "late"), isBinary: false))
        #expect(try written().isEmpty)
    }

    @Test("a close before the stream opened is told to whoever answers the request, and ends the session")
    func closeBeforeOpen() throws {
        let stream = try handler()
        var told: CloseReason?
        stream.attach(session) { told = $0 }
        stream.close(CloseReason(code: 1008, reason: "too many pending messages"))
        #expect(told == CloseReason(code: 1008, reason: "too many pending messages"))
        #expect(session.closedCount == 1)
        #expect(!stream.isOpen)
    }

    @Test("a client that stops reading is closed as a slow consumer")
    func slowConsumer() throws {
        let stream = try handler()
        stream.attach(session)
        try channel.pipeline.syncOperations.addHandler(stream)
        stream.sendPreEncoded(ByteBuffer(string: "data: x\n\n"))
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(try written() == ["data: x\n\n"])
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(session.closedCount == 1)
    }
}
