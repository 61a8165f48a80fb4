import NIOCore
import Switchboard
import SwitchboardHummingbird
import SwitchboardTestSupport
import Testing

extension TestServer {
    func plain(room: String, user: String) async throws -> TestWebSocket {
        let ws = try await TestWebSocket.connect(port: port, path: "/plain/\(room)/socket/\(user)")
        // The `connected` callback greets first: proof the URL variables reached the handler.
        #expect(try await ws.receiveJSON() == ["hello": .string(user), "room": .string(room)])
        return ws
    }
}

@Suite("Plain WebSocket channels")
struct PlainChannelTests {
    @Test("URL variables from a nested route reach connect; messages decode; replies are plain JSON")
    func greetingAndDecode() async throws {
        try await TestServer.run { server in
            let ws = try await server.plain(room: "r1", user: "alice")
            try await ws.send(#"{"op":"echo","text":"hi"}"#)
            #expect(try await ws.receiveJSON() == ["echo": "hi"])
            // A message that does not decode gets an error answer; the connection stays usable.
            try await ws.send("not json")
            let error = try await ws.receiveJSON()
            #expect(error["error"]?["code"] == "invalid_message")
            try await ws.send(#"{"op":"dance"}"#)
            #expect(try await ws.receiveJSON() == ["error": ["code": "unknown_op", "message": "unknown op dance"]])
            try await ws.send(#"{"op":"echo","text":"still here"}"#)
            #expect(try await ws.receiveJSON() == ["echo": "still here"])
            await ws.close()
        }
    }

    @Test("a refused connect is the handler's HTTP status with a JSON reason; unknown paths are 404")
    func refused() async throws {
        try await TestServer.run { server in
            await #expect(throws: TestWebSocketError.handshakeFailed(status: 401, body: #"{"error":"not you"}"#)) {
                _ = try await TestWebSocket.connect(port: server.port, path: "/plain/r1/socket/mallory")
            }
            do {
                _ = try await TestWebSocket.connect(port: server.port, path: "/nowhere")
                Issue.record("upgrade to an unknown path succeeded")
            } catch TestWebSocketError.handshakeFailed(let status, _) {
                #expect(status == 404)
            }
        }
    }

    @Test("rooms: isolation, broadcast to a room, all-but-sender, join and leave on the fly, members listed")
    func rooms() async throws {
        try await TestServer.run { server in
            let a = try await server.plain(room: "red", user: "a")
            let b = try await server.plain(room: "red", user: "b")
            let c = try await server.plain(room: "blue", user: "c")
            try await a.send(#"{"op":"say","text":"hello red"}"#)
            #expect(try await a.receiveJSON() == ["from": "a", "text": "hello red"])
            #expect(try await b.receiveJSON() == ["from": "a", "text": "hello red"])
            try await a.send(#"{"op":"say_others","text":"not to me"}"#)
            #expect(try await b.receiveJSON() == ["from": "a", "text": "not to me"])
            #expect(try await a.frameArriving(within: .milliseconds(150)) == nil)
            #expect(try await c.frameArriving(within: .milliseconds(150)) == nil)
            try await c.send(#"{"op":"join","room":"red"}"#)
            try await c.send(#"{"op":"members","room":"red"}"#)
            #expect(try await c.receiveJSON() == ["members": 3])
            server.hub.plainChannel("test").broadcast(json: ["n": 1], toRoom: "red")
            for ws in [a, b, c] { #expect(try await ws.receiveJSON() == ["n": 1]) }
            try await c.send(#"{"op":"leave","room":"red"}"#)
            try await c.send(#"{"op":"members","room":"red"}"#)
            #expect(try await c.receiveJSON() == ["members": 2])
            // Channel-wide broadcast from outside (a route, a timer): every client of the channel.
            try server.hub.plainChannel("test").broadcast(["all": true])
            for ws in [a, b, c] { #expect(try await ws.receiveJSON() == ["all": true]) }
            await b.close()
            #expect(await eventually { server.hub.plainChannel("test").connections(inRoom: "red").count == 1 })
            #expect(await eventually { server.log.all.contains("plain disconnected b") })
            await a.close()
            await c.close()
            #expect(await eventually { server.hub.localSubscriberCount(topic: "test") == 0 })
        }
    }

    @Test("a Phoenix client and a plain client on the same hub topic see each other's broadcasts")
    func mixedWithPhoenix() async throws {
        try await TestServer.run { server in
            let phoenix = try await server.connect()
            try await join(phoenix, "test:mixed", ref: "1")
            let plain = try await server.plain(room: "mixed", user: "p")
            try await plain.send(#"{"op":"say","text":"from plain"}"#)
            #expect(try await plain.receiveJSON() == ["from": "p", "text": "from plain"])
            #expect(try await phoenix.receiveJSON() == v2(nil, nil, "test:mixed", "message", ["from": "p", "text": "from plain"]))
            await phoenix.close()
            await plain.close()
        }
    }

    @Test("the handler can close a client with a code; ping/pong keeps an idle client alive, silence closes it")
    func closeAndIdle() async throws {
        var configuration = PhoenixSocket.Configuration()
        configuration.idleTimeout = .milliseconds(1500)
        try await TestServer.run(configuration: configuration) { server in
            let bye = try await server.plain(room: "x", user: "bye")
            try await bye.send(#"{"op":"bye"}"#)
            #expect(try await bye.receive() == .close(code: 4000, reason: "bye"))
            let idle = try await server.plain(room: "x", user: "idle")
            let pinging = try await server.plain(room: "x", user: "ping")
            for i in 0..<12 {
                try await pinging.sendFrame(opcode: 0x9, payload: [UInt8(i)])
                #expect(try await pinging.receive() == .pong([UInt8(i)]))
                try await Task.sleep(for: .milliseconds(250))
            }
            // The idle client was pinged (it never answers), then closed.
            var frame = try await idle.receive(timeout: .seconds(10))
            while case .ping = frame { frame = try await idle.receive(timeout: .seconds(10)) }
            #expect(frame == .close(code: 1002, reason: "idle timeout"))
            try await pinging.send(#"{"op":"echo","text":"alive"}"#)
            #expect(try await pinging.receiveJSON() == ["echo": "alive"])
            await pinging.close()
        }
    }

    @Test(
        "the server pings a listen-only client: one that answers stays connected and keeps receiving for many idle timeouts; one that never answers is closed"
    )
    func serverPings() async throws {
        var configuration = PhoenixSocket.Configuration()
        configuration.idleTimeout = .milliseconds(1500)
        try await TestServer.run(configuration: configuration, plainPingInterval: .milliseconds(400)) { server in
            let listener = try await server.plain(room: "quiet", user: "listener")
            let silent = try await server.plain(room: "quiet", user: "silent")
            let channel = server.hub.plainChannel("test")
            // 6 s = 4 idle timeouts: the listener sends nothing but pongs.
            let deadline = NIODeadline.now() + .seconds(6)
            var pings = 0
            var received: [JSONValue] = []
            var sent = 0
            var nextBroadcast = NIODeadline.now()
            while NIODeadline.now() < deadline {
                if NIODeadline.now() >= nextBroadcast {
                    channel.broadcast(json: ["n": .int(Int64(sent))], toRoom: "quiet")
                    sent += 1
                    nextBroadcast = NIODeadline.now() + .milliseconds(700)
                }
                switch try await listener.frameArriving(within: .milliseconds(100)) {
                case .ping(let payload)?:
                    pings += 1
                    try await listener.sendFrame(opcode: 0xA, payload: payload)
                case .text(let text)?:
                    received.append(try JSONParser.parse(text))
                case nil:
                    break
                case let other?:
                    Issue.record("unexpected frame \(other)")
                }
            }
            #expect(pings >= 6, "pings: \(pings)")
            // Every broadcast of the 6 s arrived (the last may still be on its way).
            while received.count < sent, let frame = try await listener.frameArriving(within: .seconds(2)) {
                if case .text(let text) = frame { received.append(try JSONParser.parse(text)) }
            }
            #expect(received == (0..<sent).map { ["n": .int(Int64($0))] })
            // The one that never answered was pinged, then closed at its idle timeout.
            var silentFrames: [TestFrame] = []
            while let frame = try await silent.frameArriving(within: .seconds(1)) {
                silentFrames.append(frame)
                if case .close = frame { break }
            }
            #expect(silentFrames.contains { if case .ping = $0 { true } else { false } })
            #expect(silentFrames.last == .close(code: 1002, reason: "idle timeout"))
            #expect(await eventually { channel.connections(inRoom: "quiet").count == 1 })
            await listener.close()
            await silent.close()
        }
    }

    @Test("a plain client that stops reading is disconnected; the others get every message")
    func slowConsumer() async throws {
        var configuration = PhoenixSocket.Configuration()
        configuration.maxQueuedBytes = 64 * 1024
        try await TestServer.run(configuration: configuration) { server in
            let slow = try await server.plain(room: "s", user: "slow")
            let fast = try await server.plain(room: "s", user: "fast")
            try await slow.stopReading()
            let body = String(repeating: "x", count: 1000)
            let count = 12000  // 12 MB: more than the kernel's socket buffers take, whatever the write sizes
            let received = Task { try await fast.countTextFrames(upTo: count) }
            for i in 0..<count {
                server.hub.plainChannel("test").broadcast(json: ["i": .int(Int64(i)), "body": .string(body)], toRoom: "s")
                if i % 200 == 0 { try await Task.sleep(for: .milliseconds(5)) }
            }
            #expect(try await received.value == count)
            #expect(await eventually { server.hub.plainChannel("test").connections(inRoom: "s").count == 1 })
            #expect(await eventually { server.log.all.contains("plain disconnected slow") })
            await slow.close()
            await fast.close()
        }
    }
}
