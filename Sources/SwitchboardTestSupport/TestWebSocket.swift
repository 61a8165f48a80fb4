import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Switchboard

/// A frame received by the test client.
public enum TestFrame: Sendable, Equatable {
    case text(String)
    case binary([UInt8])
    case close(code: UInt16?, reason: String)
    case ping([UInt8])
    case pong([UInt8])
}

public enum TestWebSocketError: Error, Equatable {
    case handshakeFailed(status: Int, body: String)
    case timeout
    case connectionClosed
}

/// A minimal WebSocket client for the test suites (shared by the transport and cluster tests): raw HTTP upgrade, masked frames out, frames in.
/// Everything runs on one NIO event loop; test code awaits futures.
public final class TestWebSocket: Sendable {
    public let channel: any Channel
    let handler: NIOLoopBound<TestWebSocketHandler>
    /// Response headers of the handshake (lower-cased names).
    public let responseHeaders: [String: String]

    static let group = MultiThreadedEventLoopGroup.singleton

    private init(channel: any Channel, handler: NIOLoopBound<TestWebSocketHandler>, responseHeaders: [String: String]) {
        self.channel = channel
        self.handler = handler
        self.responseHeaders = responseHeaders
    }

    /// Connects and upgrades. Throws `handshakeFailed` with the HTTP status when the server refuses.
    public static func connect(port: Int, path: String, headers: [(String, String)] = [], host: String = "127.0.0.1") async throws -> TestWebSocket {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port)
            .get()
        let handshake = channel.eventLoop.makePromise(of: [String: String].self)
        let bound = try await channel.eventLoop.submit {
            let handler = TestWebSocketHandler(handshake: handshake)
            try channel.pipeline.syncOperations.addHandler(handler)
            return NIOLoopBound(handler, eventLoop: channel.eventLoop)
        }.get()
        var request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(10)) { handshake.fail(TestWebSocketError.timeout) }
        do {
            let responseHeaders = try await handshake.futureResult.get()
            timeout.cancel()
            return TestWebSocket(channel: channel, handler: bound, responseHeaders: responseHeaders)
        } catch {
            timeout.cancel()
            try? await channel.close()
            throw error
        }
    }

    /// Sends a text frame.
    public func send(_ text: String) async throws {
        try await sendFrame(opcode: 0x1, payload: Array(text.utf8))
    }

    /// Sends a JSON value as a text frame.
    public func send(json: JSONValue) async throws {
        try await send(json.description)
    }

    /// Sends a binary frame.
    public func sendBinary(_ bytes: [UInt8]) async throws {
        try await sendFrame(opcode: 0x2, payload: bytes)
    }

    /// Sends one frame, masked as a client must.
    public func sendFrame(opcode: UInt8, payload: [UInt8], fin: Bool = true) async throws {
        var buffer = ByteBuffer()
        buffer.writeInteger((fin ? 0x80 : 0) | opcode)
        let mask: [UInt8] = [0x11, 0x22, 0x33, 0x44]
        if payload.count < 126 {
            buffer.writeInteger(UInt8(0x80 | payload.count))
        } else if payload.count <= 0xFFFF {
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(payload.count))
        } else {
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(payload.count))
        }
        buffer.writeBytes(mask)
        buffer.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset % 4] })
        try await channel.writeAndFlush(buffer).get()
    }

    /// The next frame, or `timeout`/`connectionClosed`.
    public func receive(timeout: TimeAmount = .seconds(5)) async throws -> TestFrame {
        let loop = channel.eventLoop
        let handler = self.handler
        return try await loop.flatSubmit {
            handler.value.next(timeout: timeout)
        }.get()
    }

    /// The next data frame parsed as JSON (fails on anything else).
    public func receiveJSON(timeout: TimeAmount = .seconds(5)) async throws -> JSONValue {
        let frame = try await receive(timeout: timeout)
        guard case .text(let text) = frame else {
            throw TestFailure("expected a text frame, got \(frame)")
        }
        return try JSONParser.parse(text)
    }

    /// Asserts nothing arrives within `duration` (returns what arrived, if anything).
    public func frameArriving(within duration: TimeAmount) async throws -> TestFrame? {
        do {
            return try await receive(timeout: duration)
        } catch TestWebSocketError.timeout {
            return nil
        }
    }

    /// Reads text frames until `count` have arrived or something else (or nothing within 10 s) does;
    /// returns how many arrived.
    public func countTextFrames(upTo count: Int) async throws -> Int {
        var n = 0
        while n < count {
            guard case .text = try await receive(timeout: .seconds(10)) else { break }
            n += 1
        }
        return n
    }

    /// Stops reading from the socket (for slow-consumer tests).
    public func stopReading() async throws {
        try await channel.setOption(ChannelOptions.autoRead, value: false).get()
    }

    public func close() async {
        try? await channel.close()
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Parses the handshake response, then frames; hands frames to waiters.
final class TestWebSocketHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private var buffer = ByteBuffer()
    private var handshake: EventLoopPromise<[String: String]>?
    private var frames: [TestFrame] = []
    private var waiter: (promise: EventLoopPromise<TestFrame>, timeout: Scheduled<Void>)?
    private var closed = false
    private var failedStatus: Int?
    private var failedHeaderEnd = 0
    private var fragments: [UInt8]?
    private var fragmentOpcode: UInt8 = 0

    init(handshake: EventLoopPromise<[String: String]>) {
        self.handshake = handshake
    }

    func next(timeout: TimeAmount) -> EventLoopFuture<TestFrame> {
        let loop = MultiThreadedEventLoopGroup.currentEventLoop!
        if !frames.isEmpty { return loop.makeSucceededFuture(frames.removeFirst()) }
        if closed { return loop.makeFailedFuture(TestWebSocketError.connectionClosed) }
        let promise = loop.makePromise(of: TestFrame.self)
        let scheduled = loop.scheduleTask(in: timeout) { [weak self] in
            guard let self, let waiter = self.waiter else { return }
            self.waiter = nil
            waiter.promise.fail(TestWebSocketError.timeout)
        }
        waiter = (promise, scheduled)
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        if handshake != nil { parseHandshake() }
        if handshake == nil && failedStatus == nil { parseFrames() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        if let status = failedStatus, let handshake {
            let body = String(buffer: buffer)
            self.handshake = nil
            handshake.fail(TestWebSocketError.handshakeFailed(status: status, body: body))
        }
        handshake?.fail(TestWebSocketError.connectionClosed)
        handshake = nil
        if let waiter {
            self.waiter = nil
            waiter.timeout.cancel()
            waiter.promise.fail(TestWebSocketError.connectionClosed)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func parseHandshake() {
        if let status = failedStatus {
            // Refused: wait for the body (Content-Length) or the close.
            _ = status
            return finishRefusalIfComplete()
        }
        let view = buffer.readableBytesView
        guard let end = view.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
        let headText = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
        buffer.moveReaderIndex(forwardBy: end.upperBound - view.startIndex)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if status == 101 {
            let promise = handshake
            handshake = nil
            promise?.succeed(headers)
        } else {
            failedStatus = status
            failedHeaderEnd = Int(headers["content-length"] ?? "") ?? -1
            finishRefusalIfComplete()
        }
    }

    private func finishRefusalIfComplete() {
        guard let status = failedStatus, failedHeaderEnd >= 0, buffer.readableBytes >= failedHeaderEnd, let handshake else { return }
        let body = buffer.readString(length: failedHeaderEnd) ?? ""
        self.handshake = nil
        handshake.fail(TestWebSocketError.handshakeFailed(status: status, body: body))
    }

    private func parseFrames() {
        while true {
            guard buffer.readableBytes >= 2 else { return }
            let start = buffer.readerIndex
            let b0 = buffer.getInteger(at: start, as: UInt8.self)!
            let b1 = buffer.getInteger(at: start + 1, as: UInt8.self)!
            var length = Int(b1 & 0x7F)
            var offset = 2
            if length == 126 {
                guard let l = buffer.getInteger(at: start + 2, as: UInt16.self) else { return }
                length = Int(l)
                offset = 4
            } else if length == 127 {
                guard let l = buffer.getInteger(at: start + 2, as: UInt64.self) else { return }
                length = Int(l)
                offset = 10
            }
            guard buffer.readableBytes >= offset + length else { return }
            buffer.moveReaderIndex(forwardBy: offset)
            let payload = buffer.readBytes(length: length)!
            let opcode = b0 & 0x0F
            let fin = b0 & 0x80 != 0
            switch opcode {
            case 0x0:
                fragments = (fragments ?? []) + payload
                if fin, let all = fragments {
                    fragments = nil
                    deliver(fragmentOpcode == 1 ? .text(String(decoding: all, as: UTF8.self)) : .binary(all))
                }
            case 0x1, 0x2:
                if fin {
                    deliver(opcode == 1 ? .text(String(decoding: payload, as: UTF8.self)) : .binary(payload))
                } else {
                    fragments = payload
                    fragmentOpcode = opcode
                }
            case 0x8:
                let code = payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil
                let reason = payload.count > 2 ? String(decoding: payload[2...], as: UTF8.self) : ""
                deliver(.close(code: code, reason: reason))
            case 0x9: deliver(.ping(payload))
            case 0xA: deliver(.pong(payload))
            default: break
            }
        }
    }

    private func deliver(_ frame: TestFrame) {
        if let waiter {
            self.waiter = nil
            waiter.timeout.cancel()
            waiter.promise.succeed(frame)
        } else {
            frames.append(frame)
        }
    }
}
