import HummingbirdCore
import NIOCore
import NIOPosix
import Switchboard
import SwitchboardTestSupport
import Testing

/// An HTTP response: status and body parsed as JSON (nil if the body is not JSON).
struct HTTPResult {
    let status: Int
    let json: JSONValue?
}

/// Collects everything a connection receives until the server closes it.
final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: used only on its channel's event loop; `done` is completed once, there.
    typealias InboundIn = ByteBuffer
    var buffer = ByteBuffer()
    let done: EventLoopPromise<ByteBuffer>
    init(done: EventLoopPromise<ByteBuffer>) { self.done = done }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var part = unwrapInboundIn(data)
        buffer.writeBuffer(&part)
    }
    func channelInactive(context: ChannelHandlerContext) { done.succeed(buffer) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// One HTTP/1.1 request with `Connection: close`, over a plain socket.
func http(
    _ method: String,
    port: Int,
    path: String,
    body: String? = nil,
    key: String? = TestServer.apiKey,
    headers: [String] = []
) async throws -> HTTPResult {
    let group = MultiThreadedEventLoopGroup.singleton
    let loop = group.next()
    let done = loop.makePromise(of: ByteBuffer.self)
    let channel = try await ClientBootstrap(group: loop)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ResponseCollector(done: done)) }
        }
        .connect(host: "127.0.0.1", port: port).get()
    var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if let key { request += "Authorization: Bearer \(key)\r\n" }
    for header in headers { request += header + "\r\n" }
    let bytes = Array((body ?? "").utf8)
    if body != nil { request += "Content-Type: application/json\r\n" }
    request += "Content-Length: \(bytes.count)\r\n\r\n"
    var out = ByteBuffer(string: request)
    out.writeBytes(bytes)
    try await channel.writeAndFlush(out).get()
    let timeout = loop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
    let response = String(buffer: try await done.futureResult.get())
    timeout.cancel()
    let status = Int(response.split(separator: " ", maxSplits: 2).dropFirst().first ?? "") ?? 0
    guard let split = response.range(of: "\r\n\r\n") else { return HTTPResult(status: status, json: nil) }
    let head = response[..<split.lowerBound].lowercased()
    var payload = String(response[split.upperBound...])
    if head.contains("transfer-encoding: chunked") {
        // Join the chunks (hex size line, data, CRLF) until the zero chunk.
        var joined = ""
        var rest = Substring(payload)
        while let line = rest.range(of: "\r\n"), let size = Int(rest[..<line.lowerBound], radix: 16), size > 0 {
            let start = line.upperBound
            let end = rest.utf8.index(start, offsetBy: size)
            joined += rest[start..<end]
            rest = rest[end...].dropFirst(2)
        }
        payload = joined
    }
    return HTTPResult(status: status, json: try? JSONParser.parse(payload))
}

/// Writes `requests` at once on one connection and returns everything the server sends until it closes.
func rawExchange(port: Int, _ requests: String) async throws -> String {
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    let done = loop.makePromise(of: ByteBuffer.self)
    let channel = try await ClientBootstrap(group: loop)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ResponseCollector(done: done)) }
        }
        .connect(host: "127.0.0.1", port: port).get()
    try await channel.writeAndFlush(ByteBuffer(string: requests)).get()
    let timeout = loop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
    defer { timeout.cancel() }
    return String(buffer: try await done.futureResult.get())
}

@Suite("HTTP API")
struct HubAPITests {
    @Test(
        "POST /api/broadcast reaches WebSocket subscribers; the batch form publishes to many topics (on the event loop, and by the router)",
        arguments: [true, false]
    )
    func broadcast(onLoop: Bool) async throws {
        try await TestServer.run(onLoopPublish: onLoop) { server in
            let a = try await server.connect()
            let b = try await server.connect()
            try await join(a, "room:api", ref: "1")
            try await join(b, "room:other", ref: "1")
            let single = try await http(
                "POST",
                port: server.port,
                path: "/api/broadcast",
                body: #"{"topic":"room:api","event":"news","payload":{"n":1}}"#
            )
            #expect(single.status == 202)
            #expect(single.json == ["published": 1])
            #expect(try await a.receiveJSON() == v2(nil, nil, "room:api", "news", ["n": 1]))
            let batch = try await http(
                "POST",
                port: server.port,
                path: "/api/broadcast",
                body: #"{"messages":[{"topic":"room:api","event":"x","payload":{}},{"topic":"room:other","event":"y","payload":{"k":"v"}}]}"#
            )
            #expect(batch.status == 202)
            #expect(batch.json == ["published": 2])
            #expect(try await a.receiveJSON() == v2(nil, nil, "room:api", "x"))
            #expect(try await b.receiveJSON() == v2(nil, nil, "room:other", "y", ["k": "v"]))
            await a.close()
            await b.close()
        }
    }

    @Test("API calls without the key, or with a wrong one, are 401 with a JSON error; nothing is published", arguments: [true, false])
    func auth(onLoop: Bool) async throws {
        try await TestServer.run(onLoopPublish: onLoop) { server in
            let ws = try await server.connect()
            try await join(ws, "room:auth", ref: "1")
            for path in ["/api/topics", "/api/broadcast"] {
                let method = path == "/api/topics" ? "GET" : "POST"
                let body = method == "POST" ? #"{"topic":"room:auth","event":"e","payload":{}}"# : nil
                let none = try await http(method, port: server.port, path: path, body: body, key: nil)
                #expect(none.status == 401, "\(path)")
                #expect(none.json?["error"]?["code"] == "unauthorized", "\(path)")
                #expect(none.json?["error"]?["message"] == "missing API key (Authorization: Bearer <key>)", "\(path)")
                let wrong = try await http(method, port: server.port, path: path, body: body, key: "nope")
                #expect(wrong.status == 401, "\(path)")
                #expect(wrong.json?["error"]?["code"] == "unauthorized", "\(path)")
                #expect(wrong.json?["error"]?["message"] == "invalid API key", "\(path)")
            }
            #expect(try await ws.frameArriving(within: .milliseconds(200)) == nil)
            await ws.close()
        }
    }

    @Test("a body over the API's limit is 413 body_too_large and publishes nothing", arguments: [true, false])
    func bodyTooLarge(onLoop: Bool) async throws {
        try await TestServer.run(onLoopPublish: onLoop) { server in
            let ws = try await server.connect()
            try await join(ws, "room:big", ref: "1")
            let padding = String(repeating: "x", count: 70 * 1024)
            let result = try await http(
                "POST",
                port: server.port,
                path: "/api/broadcast",
                body: #"{"topic":"room:big","event":"e","payload":{"pad":"\#(padding)"}}"#
            )
            #expect(result.status == 413)
            #expect(result.json?["error"]?["code"] == "body_too_large")
            #expect(try await ws.frameArriving(within: .milliseconds(200)) == nil)
            await ws.close()
        }
    }

    @Test("publishes pipelined on one keep-alive connection, after an ordinary request, are each answered in order and delivered in order")
    func pipelinedPublishes() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await join(ws, "room:pipe", ref: "1")
            var requests = "GET /api/topics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(TestServer.apiKey)\r\n\r\n"
            for n in 1...5 {
                let body = #"{"topic":"room:pipe","event":"n","payload":{"n":\#(n)}}"#
                requests +=
                    "POST /api/broadcast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(TestServer.apiKey)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            }
            requests += "POST /api/broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
            let response = try await rawExchange(port: server.port, requests)
            let statuses = response.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statuses == ["200", "202", "202", "202", "202", "202", "401"])
            #expect(response.components(separatedBy: #"{"published":1}"#).count == 6)
            for n in 1...5 {
                #expect(try await ws.receiveJSON() == v2(nil, nil, "room:pipe", "n", ["n": .int(Int64(n))]))
            }
            await ws.close()
        }
    }

    @Test("http1.idleTimeout closes a kept-alive connection that stays idle after its answer (HTTPConnectionStateHandler)")
    func idleKeepAliveConnectionCloses() async throws {
        var http1 = HTTP1Channel.Configuration()
        http1.idleTimeout = .milliseconds(300)
        try await TestServer.run(http1: http1) { server in
            let started = ContinuousClock.now
            // rawExchange waits up to 10 s for the server to close; the request head timeout is 30 s.
            let response = try await rawExchange(
                port: server.port,
                "GET /api/topics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(TestServer.apiKey)\r\n\r\n"
            )
            let waited = ContinuousClock.now - started
            #expect(response.hasPrefix("HTTP/1.1 200 "))
            #expect(waited < .seconds(3), "closed after \(waited)")
        }
    }

    @Test("a request that is not HTTP is answered 400 and the connection closes; the server goes on serving")
    func malformedRequest() async throws {
        try await TestServer.run { server in
            let response = try await rawExchange(port: server.port, "GARBAGE\r\n\r\n")
            #expect(response.hasPrefix("HTTP/1.1 400 "))
            #expect(response.contains(#"{"error":"malformed HTTP request"}"#))
            let ok = try await http("GET", port: server.port, path: "/api/topics")
            #expect(ok.status == 200)
        }
    }

    @Test(
        "bad bodies: malformed JSON is 400; missing fields, non-object payloads and reserved events are 422; nothing is published",
        arguments: [true, false]
    )
    func badInput(onLoop: Bool) async throws {
        try await TestServer.run(onLoopPublish: onLoop) { server in
            let ws = try await server.connect()
            try await join(ws, "room:bad", ref: "1")
            let cases: [(String, Int, String)] = [
                ("{not json", 400, "invalid_json"),
                ("[1,2]", 400, "invalid_json"),
                (#"{"event":"e","payload":{}}"#, 422, "invalid_request"),
                (#"{"topic":"room:bad","payload":{}}"#, 422, "invalid_request"),
                (#"{"topic":"room:bad","event":"e","payload":[1]}"#, 422, "invalid_request"),
                (#"{"topic":"room:bad","event":"phx_close","payload":{}}"#, 422, "reserved_event"),
                (#"{"messages":[{"topic":"room:bad","event":"ok","payload":{}},{"topic":"room:bad"}]}"#, 422, "invalid_request"),
            ]
            for (body, status, code) in cases {
                let result = try await http("POST", port: server.port, path: "/api/broadcast", body: body)
                #expect(result.status == status, "\(body)")
                #expect(result.json?["error"]?["code"]?.stringValue == code, "\(body)")
            }
            #expect(try await ws.frameArriving(within: .milliseconds(200)) == nil)
            await ws.close()
        }
    }

    @Test("GET /api/topics lists local topics with subscriber counts; POST /api/disconnect closes a user's sockets")
    func topicsAndDisconnect() async throws {
        try await TestServer.run { server in
            let a = try await server.connect("vsn=2.0.0&user=42")
            let b = try await server.connect("vsn=2.0.0&user=43")
            try await join(a, "room:t", ref: "1")
            try await join(b, "room:t", ref: "1")
            let topics = try await http("GET", port: server.port, path: "/api/topics")
            #expect(topics.status == 200)
            let list = topics.json?["topics"]?.arrayValue ?? []
            #expect(list.contains(["topic": "room:t", "subscribers": 2]))
            let one = try await http("GET", port: server.port, path: "/api/topics/room:t")
            #expect(one.json == ["topic": "room:t", "subscribers": 2])
            let gone = try await http("POST", port: server.port, path: "/api/disconnect", body: #"{"user":"42"}"#)
            #expect(gone.status == 202)
            #expect(try await a.receive() == .close(code: 1001, reason: "disconnected"))
            #expect(await eventually { server.hub.localSubscriberCount(topic: "room:t") == 1 })
            let missing = try await http("POST", port: server.port, path: "/api/disconnect", body: "{}")
            #expect(missing.status == 422)
            await b.close()
        }
    }
}
