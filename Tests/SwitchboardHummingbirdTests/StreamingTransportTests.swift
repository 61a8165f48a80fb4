import NIOCore
import NIOPosix
import Switchboard
import SwitchboardTestSupport
import Synchronization
import Testing

/// A raw HTTP/1.1 connection: write any bytes, watch everything the server sends.
final class RawHTTPConnection: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: `received` and `isClosed` are behind a mutex / atomic; the rest is immutable.
    typealias InboundIn = ByteBuffer
    private let received = Mutex("")
    private let closedFlag = Atomic(false)
    private(set) var channel: (any Channel)!

    static func connect(port: Int) async throws -> RawHTTPConnection {
        let connection = RawHTTPConnection()
        connection.channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(connection) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let text = String(buffer: unwrapInboundIn(data))
        received.withLock { $0 += text }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closedFlag.store(true, ordering: .relaxed)
    }

    var text: String { received.withLock { $0 } }
    var isClosed: Bool { closedFlag.load(ordering: .relaxed) }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    /// A GET with the usual headers (keep-alive unless `close`).
    func get(_ path: String, headers: [String] = []) async throws {
        try await send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n")
    }

    func post(_ path: String, body: String, contentType: String = "application/json") async throws {
        try await send(
            "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        )
    }

    /// Waits until the received text contains `needle` `count` times.
    func waitFor(_ needle: String, count: Int = 1, timeout: Duration = .seconds(5)) async -> Bool {
        await eventually(timeout: timeout) { self.text.components(separatedBy: needle).count - 1 >= count }
    }

    func close() async {
        try? await channel.close().get()
    }
}

@Suite("Server-Sent Events and long-poll transports")
struct StreamingTransportTests {
    @Test("an SSE stream opens once every topic is joined, then carries pushes and broadcasts with positions")
    func eventStream() async throws {
        try await TestServer.run { server in
            let client = try await RawHTTPConnection.connect(port: server.port)
            try await client.get("/events?topics=room:a,exact&user=sam")
            #expect(await client.waitFor("event: welcome", count: 2))
            let head = client.text
            #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(head.contains("content-type: text/event-stream; charset=utf-8\r\n"))
            #expect(head.contains("\r\n\r\nretry: 2000\n\n"))
            #expect(head.contains("event: welcome\ndata: {\"topic\":\"room:a\"}\n\n"))
            #expect(head.contains("event: welcome\ndata: {\"topic\":\"exact\"}\n\n"))
            server.hub.broadcast(topic: "room:a", event: "news", payload: ["n": 1])
            server.hub.broadcast(topic: "exact", event: "news", payload: ["n": 2])
            server.hub.broadcast(topic: "room:a", event: "news", payload: ["n": 3])
            #expect(await client.waitFor("event: news", count: 3))
            let text = client.text
            #expect(text.contains("id: room:a:1\nevent: news\ndata: {\"n\":1}\n\n"))
            #expect(text.contains("id: exact:1\nevent: news\ndata: {\"n\":2}\n\n"))
            #expect(text.contains("id: room:a:2\nevent: news\ndata: {\"n\":3}\n\n"))
            #expect(server.log.all.contains("join room:a"))
            await client.close()
            #expect(await eventually { server.hub.localTopics().isEmpty }, "left: \(server.hub.localTopics())")
            #expect(await eventually { server.log.all.contains { $0.hasPrefix("terminate room:a") } })
        }
    }

    @Test("a refused topic answers 403 with the reason before any stream, and nothing stays joined")
    func refusedTopic() async throws {
        try await TestServer.run { server in
            let refused = try await http("GET", port: server.port, path: "/events?topics=room:a&refuse=nope", key: nil)
            #expect(refused.status == 403)
            #expect(refused.json == ["error": "nope", "topic": "room:a"])
            let unmatched = try await http("GET", port: server.port, path: "/events/nowhere%3A1", key: nil)
            #expect(unmatched.status == 403)
            #expect(unmatched.json == ["error": "unmatched topic", "topic": "nowhere:1"])
            let connectRefused = try await http("GET", port: server.port, path: "/events?topics=room:a&deny=1", key: nil)
            #expect(connectRefused.status == 403)
            #expect(connectRefused.json == ["error": "denied by test"])
            let none = try await http("GET", port: server.port, path: "/events", key: nil)
            #expect(none.status == 400)
            let post = try await http("POST", port: server.port, path: "/events?topics=room:a", body: "{}", key: nil)
            #expect(post.status == 405)
            #expect(await eventually { server.hub.localTopics().isEmpty })
        }
    }

    @Test("an SSE request after an ordinary request on the same keep-alive connection becomes a stream")
    func streamAfterOrdinaryRequest() async throws {
        try await TestServer.run { server in
            let client = try await RawHTTPConnection.connect(port: server.port)
            try await client.get("/api/topics", headers: ["Authorization: Bearer \(TestServer.apiKey)"])
            #expect(await client.waitFor("\"topics\""))
            try await client.get("/events/room:k")
            #expect(await client.waitFor("event: welcome"))
            server.hub.broadcast(topic: "room:k", event: "news", payload: ["k": true])
            #expect(await client.waitFor("id: room:k:1\nevent: news\ndata: {\"k\":true}\n\n"))
            await client.close()
            #expect(await eventually { server.hub.localTopics().isEmpty })
        }
    }

    @Test("disconnect by socket id ends an SSE stream with a switchboard:close event")
    func disconnectEndsStream() async throws {
        try await TestServer.run { server in
            let client = try await RawHTTPConnection.connect(port: server.port)
            try await client.get("/events?topics=room:d&user=dora")
            #expect(await client.waitFor("event: welcome"))
            server.hub.disconnect(socketID: "user_socket:dora")
            #expect(await client.waitFor("event: switchboard:close\ndata: "))
            let last = client.text.components(separatedBy: "event: switchboard:close\ndata: ").last ?? ""
            let closing = try JSONParser.parse(String(last.prefix { $0 != "\n" }))
            #expect(closing == ["code": 1001, "reason": "disconnected"])
            #expect(await eventually { client.isClosed })
            #expect(await eventually { server.hub.localTopics().isEmpty })
            #expect(await eventually { server.log.aliveTrackedConnections == 0 })
        }
    }

    @Test("an idle stream gets keep-alive comments")
    func keepAlive() async throws {
        var configuration = PhoenixSocket.Configuration()
        configuration.eventStreamKeepAlive = .milliseconds(100)
        try await TestServer.run(configuration: configuration) { server in
            let client = try await RawHTTPConnection.connect(port: server.port)
            try await client.get("/events/exact")
            #expect(await client.waitFor(": keep-alive\n\n", count: 2))
            await client.close()
        }
    }

    @Test("an SSE client that stops reading is closed as a slow consumer; others keep receiving")
    func slowConsumer() async throws {
        var configuration = PhoenixSocket.Configuration()
        configuration.maxQueuedBytes = 64 * 1024
        try await TestServer.run(configuration: configuration) { server in
            let slow = try await RawHTTPConnection.connect(port: server.port)
            try await slow.get("/events/room:slow")
            #expect(await slow.waitFor("event: welcome"))
            try await slow.channel.setOption(ChannelOptions.autoRead, value: false).get()
            let fast = try await server.connect()
            try await join(fast, "room:slow", ref: "1")
            let big = JSONValue.string(String(repeating: "x", count: 16 * 1024))
            for i in 0..<400 where server.hub.localSubscriberCount(topic: "room:slow") == 2 {
                server.hub.broadcast(topic: "room:slow", event: "big", payload: ["i": .int(Int64(i)), "data": big])
                if i % 4 == 3 { try await Task.sleep(for: .milliseconds(5)) }  // paced, so the reading client keeps up on a busy machine
            }
            #expect(await eventually { server.hub.localSubscriberCount(topic: "room:slow") == 1 }, "the slow stream was not closed")
            server.hub.broadcast(topic: "room:slow", event: "after", payload: ["ok": true])
            var sawAfter = false
            for _ in 0..<1000 where !sawAfter {
                if case .array(let fields) = try await fast.receiveJSON(), fields.count == 5 { sawAfter = fields[3] == "after" }
            }
            #expect(sawAfter)
            await fast.close()
            await slow.close()
        }
    }

    @Test("long-poll: open, join and push by POST, replies and broadcasts by GET, in order on one connection")
    func longPoll() async throws {
        try await TestServer.run { server in
            let opened = try await http("GET", port: server.port, path: "/socket/longpoll?vsn=2.0.0&user=lp", key: nil)
            #expect(opened.status == 200)
            #expect(opened.json?["status"] == 410)
            guard let token = opened.json?["token"]?.stringValue else { throw TestFailure("no token") }
            // A POST and a GET written together on one connection: answered in order.
            let client = try await RawHTTPConnection.connect(port: server.port)
            let batch = #"["1","1","room:lp","phx_join",{}]"# + "\n" + #"["1","2","room:lp","ping",{"x":1}]"#
            try await client.send(
                "POST /socket/longpoll?vsn=2.0.0&token=\(token) HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: \(batch.utf8.count)\r\n\r\n\(batch)"
                    + "GET /socket/longpoll?vsn=2.0.0&token=\(token) HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            #expect(await client.waitFor("\"messages\":["))
            let text = client.text
            guard let post = text.range(of: "{\"status\":200}"), let poll = text.range(of: "{\"status\":200,\"token\":") else {
                throw TestFailure("unexpected answers: \(text)")
            }
            #expect(post.lowerBound < poll.lowerBound)
            let firstAnswer = try JSONParser.parse(String(text[poll.lowerBound...]))
            guard case .array(let firstMessages)? = firstAnswer["messages"] else { throw TestFailure("no messages: \(text)") }
            let first = try firstMessages.compactMap { $0.stringValue }.map { try JSONParser.parse($0) }
            #expect(first.first == ["1", "1", "room:lp", "phx_reply", ["status": "ok", "response": ["joined": "room:lp"]]])
            server.hub.broadcast(topic: "room:lp", event: "news", payload: ["lp": true])
            let next = try await http("GET", port: server.port, path: "/socket/longpoll?vsn=2.0.0&token=\(token)", key: nil)
            guard case .array(let messages)? = next.json?["messages"] else { throw TestFailure("no messages: \(String(describing: next.json))") }
            let decoded = try messages.compactMap { $0.stringValue }.map { try JSONParser.parse($0) }
            // The ping's reply came with the first poll's answer or with this one.
            let pingReply: JSONValue = ["1", "2", "room:lp", "phx_reply", ["status": "ok", "response": ["x": 1]]]
            #expect((first + decoded).filter { $0 == pingReply }.count == 1)
            #expect(decoded.contains([.null, .null, "room:lp", "news", ["lp": true]]))
            let unknown = try await http("POST", port: server.port, path: "/socket/longpoll?token=nope", body: "[]", key: nil)
            #expect(unknown.json == ["status": 410])
            await client.close()
        }
    }

    @Test("a long-poll session that is not polled for 1.5 windows ends and its channels terminate")
    func longPollExpiry() async throws {
        var configuration = PhoenixSocket.Configuration()
        configuration.longPollWindow = .seconds(1)
        try await TestServer.run(configuration: configuration) { server in
            let opened = try await http("GET", port: server.port, path: "/socket/longpoll?vsn=2.0.0", key: nil)
            guard let token = opened.json?["token"]?.stringValue else { throw TestFailure("no token") }
            let joined = try await http(
                "POST",
                port: server.port,
                path: "/socket/longpoll?token=\(token)",
                body: #"["1","1","room:exp","phx_join",{}]"#,
                key: nil
            )
            #expect(joined.json == ["status": 200])
            #expect(await eventually { server.hub.localSubscriberCount(topic: "room:exp") == 1 })
            // A poll with nothing to deliver waits for the window, then 204.
            let started = ContinuousClock.now
            let first = try await http("GET", port: server.port, path: "/socket/longpoll?token=\(token)", key: nil)
            #expect(first.json?["status"] == 200)  // the join reply was waiting
            let empty = try await http("GET", port: server.port, path: "/socket/longpoll?token=\(token)", key: nil)
            #expect(empty.json == ["status": 204, "token": .string(token), "messages": []])
            #expect(ContinuousClock.now - started >= .milliseconds(990))
            #expect(await eventually { server.hub.localSubscriberCount(topic: "room:exp") == 0 }, "the session did not expire")
            #expect(await eventually { server.log.all.contains { $0.hasPrefix("terminate room:exp") } })
            let gone = try await http("GET", port: server.port, path: "/socket/longpoll?token=\(token)", key: nil)
            #expect(gone.json?["status"] == 410)
            #expect(gone.json?["token"]?.stringValue != token)
            #expect(await eventually { server.log.aliveTrackedConnections == 0 })
        }
    }

    @Test("a plain channel serves Server-Sent Events clients too: connect decides, connected/disconnected run, sends and room broadcasts arrive")
    func plainChannelEventStream() async throws {
        try await TestServer.run { server in
            let sse = try await RawHTTPConnection.connect(port: server.port)
            try await sse.get("/plain/r1/socket/ann", headers: ["Accept: text/event-stream"])
            #expect(await sse.waitFor("data: "))
            #expect(sse.text.hasPrefix("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream"))
            let hello = sse.text.components(separatedBy: "data: ").dropFirst().first?.prefix { $0 != "\n" } ?? ""
            #expect(try JSONParser.parse(String(hello)) == ["hello": "ann", "room": "r1"])
            #expect(server.log.all.contains("plain connected ann"))
            // A WebSocket client of the same channel talks to the room; the SSE client hears it.
            let ws = try await server.plain(room: "r1", user: "bob")
            try await ws.send(#"{"op":"say","text":"hi"}"#)
            #expect(await sse.waitFor("event: message\ndata: "))
            #expect(sse.text.contains("id: test:r1:1\nevent: message\n"))
            // Refusals answer with the handler's status and reason.
            let refused = try await http("GET", port: server.port, path: "/plain/r1/socket/mallory", key: nil, headers: ["Accept: text/event-stream"])
            #expect(refused.status == 401)
            #expect(refused.json == ["error": "not you"])
            // Without Accept: text/event-stream, the path is not a stream (the HTTP router answers).
            let ordinary = try await http("GET", port: server.port, path: "/plain/r1/socket/ann", key: nil)
            #expect(ordinary.status == 404)
            await sse.close()
            #expect(await eventually { server.log.all.contains("plain disconnected ann") })
            #expect(await eventually { server.hub.localSubscriberCount(topic: "test:r1") == 1 })
            await ws.close()
            #expect(await eventually { server.log.aliveTrackedConnections == 0 })
        }
    }

    @Test("a filtered plain-channel broadcast reaches only the clients whose context passes, over WebSocket and SSE")
    func filteredBroadcast() async throws {
        try await TestServer.run { server in
            let ann = try await RawHTTPConnection.connect(port: server.port)
            try await ann.get("/plain/f/socket/ann", headers: ["Accept: text/event-stream"])
            #expect(await ann.waitFor("data: "))
            let bob = try await server.plain(room: "f", user: "bob")
            let carl = try await server.plain(room: "f", user: "carl")
            let channel = server.hub.plainChannel("test")
            channel.broadcast(json: ["only": "ann and carl"], where: { (client: TestPlainChannel.Client) in client.user != "bob" })
            channel.broadcast(json: ["to": "all"])
            #expect(try await carl.receiveJSON() == ["only": "ann and carl"])
            #expect(try await carl.receiveJSON() == ["to": "all"])
            #expect(try await bob.receiveJSON() == ["to": "all"])
            #expect(await ann.waitFor("event: message\ndata: ", count: 2))
            #expect(ann.text.contains(#"{"only":"ann and carl"}"#))
            await ann.close()
            await bob.close()
            await carl.close()
        }
    }
}
