import NIOCore
import NIOEmbedded
import SwitchboardTestSupport
import Synchronization
import Testing

@testable import SwitchboardRESP

/// The connection handler on an `EmbeddedChannel`: byte-exact requests, scripted replies.
@Suite("RESP connection handler")
struct RESPConnectionHandlerTests {
    final class Observed: Sendable {
        let pushes = Mutex<[RESPValue]>([])
        let inactive = Mutex(0)
    }

    static func makeChannel(_ observed: Observed) throws -> EmbeddedChannel {
        let handler = RESPConnectionHandler(
            decoder: RESPDecoder(),
            timeoutCheckInterval: .milliseconds(50),
            onPush: { value in observed.pushes.withLock { $0.append(value) } },
            onInactive: { observed.inactive.withLock { $0 += 1 } }
        )
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6379)).wait()
        return channel
    }

    static func outcome(_ future: EventLoopFuture<RESPValue>) -> Result<RESPValue, any Error>? {
        let box = Mutex<Result<RESPValue, any Error>?>(nil)
        future.whenComplete { result in box.withLock { $0 = result } }
        return box.withLock { $0 }
    }

    static func send(_ channel: EmbeddedChannel, _ commands: [RESPCommand], deadline: NIODeadline? = nil) throws -> [EventLoopFuture<RESPValue>] {
        let requests = commands.map { RESPRequest(command: $0, promise: channel.eventLoop.makePromise(), deadline: deadline) }
        try channel.writeOutbound(RESPRequestBatch(requests: requests))
        return requests.map { $0.promise!.futureResult }
    }

    static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test("a pipelined batch is one write; replies complete requests in order; error replies fail only theirs")
    func pipelinedReplies() throws {
        let channel = try Self.makeChannel(Observed())
        let futures = try Self.send(channel, [RESPCommand("SET", "k", "v"), RESPCommand("INCR", "k"), RESPCommand("GET", "k")])
        #expect(
            try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }
                == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        )
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        // Replies arrive split across reads, one of them cut inside a value.
        try channel.writeInbound(ByteBuffer(string: "+OK\r\n-WRONGTYPE bad\r\n$1"))
        #expect(try Self.outcome(futures[0])?.get() == .simpleString("OK"))
        #expect(throws: RESPServerError(message: "WRONGTYPE bad")) { try Self.outcome(futures[1])?.get() }
        #expect(Self.outcome(futures[2]) == nil)
        try channel.writeInbound(ByteBuffer(string: "\r\nv\r\n"))
        #expect(try Self.outcome(futures[2])?.get() == .bulkString(ByteBuffer(string: "v")))
    }

    @Test("SUBSCRIBE completes after one confirmation push per channel; message pushes go to the push handler")
    func subscribeConfirmations() throws {
        let observed = Observed()
        let channel = try Self.makeChannel(observed)
        let futures = try Self.send(channel, [RESPCommand("SUBSCRIBE", "a", "b"), RESPCommand("PING")])
        _ = try Self.written(channel)
        try channel.writeInbound(ByteBuffer(string: ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"))
        #expect(Self.outcome(futures[0]) == nil)
        try channel.writeInbound(ByteBuffer(string: ">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"))
        try channel.writeInbound(ByteBuffer(string: ">3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n+PONG\r\n"))
        #expect(try Self.outcome(futures[0])?.get().elements?[1].string == "b")
        #expect(try Self.outcome(futures[1])?.get() == .simpleString("PONG"))
        #expect(
            observed.pushes.withLock { $0 } == [
                .push([.bulkString(ByteBuffer(string: "message")), .bulkString(ByteBuffer(string: "a")), .bulkString(ByteBuffer(string: "hi"))])
            ]
        )
    }

    @Test("invalid bytes from the server fail every waiting request with protocolError and close the connection")
    func protocolError() throws {
        let observed = Observed()
        let channel = try Self.makeChannel(observed)
        let futures = try Self.send(channel, [RESPCommand("PING"), RESPCommand("PING")])
        try channel.writeInbound(ByteBuffer(string: "+PONG\r\n?garbage\r\n"))
        #expect(try Self.outcome(futures[0])?.get() == .simpleString("PONG"))
        switch Self.outcome(futures[1]) {
        case .failure(let error as RESPClientError): #expect(error.code == .protocolError)
        default: Issue.record("expected a protocol error")
        }
        #expect(!channel.isActive)
        #expect(observed.inactive.withLock { $0 } == 1)
        // Written after the close: failed at once, never left waiting.
        let late = channel.eventLoop.makePromise(of: RESPValue.self)
        channel.write(RESPRequestBatch(requests: [RESPRequest(command: RESPCommand("PING"), promise: late, deadline: nil)]), promise: nil)
        #expect(Self.outcome(late.futureResult) != nil)
    }

    @Test("a lost connection fails every waiting request with connectionLost")
    func connectionLost() throws {
        let observed = Observed()
        let channel = try Self.makeChannel(observed)
        let futures = try Self.send(channel, [RESPCommand("BLPOP", "x", "0"), RESPCommand("PING")])
        try channel.close().wait()
        for future in futures {
            switch Self.outcome(future) {
            case .failure(let error as RESPClientError): #expect(error.code == .connectionLost)
            default: Issue.record("expected connectionLost")
            }
        }
        #expect(observed.inactive.withLock { $0 } == 1)
    }

    @Test("timed-out requests fail; their late replies are discarded so the next reply reaches the right request")
    func timeouts() throws {
        let channel = try Self.makeChannel(Observed())
        let expired = try Self.send(channel, [RESPCommand("BLPOP", "x", "1")], deadline: .uptimeNanoseconds(0))
        let later = try Self.send(channel, [RESPCommand("ECHO", "e")], deadline: .now() + .seconds(60))
        (channel.eventLoop as! EmbeddedEventLoop).advanceTime(by: .milliseconds(60))
        switch Self.outcome(expired[0]) {
        case .failure(let error as RESPClientError): #expect(error.code == .timeout)
        default: Issue.record("expected a timeout")
        }
        #expect(Self.outcome(later[0]) == nil)
        try channel.writeInbound(ByteBuffer(string: "_\r\n$1\r\ne\r\n"))
        #expect(try Self.outcome(later[0])?.get() == .bulkString(ByteBuffer(string: "e")))
    }
}
