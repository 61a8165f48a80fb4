import Logging
import NIOCore
import NIOPosix
import SwitchboardTestSupport
import Testing

@testable import Switchboard

/// A channel for session tests: `join` refuses when the payload says so and pushes a greeting
/// while joining; an intercepted `boom` broadcast crashes it.
private struct GreeterChannel: TopicChannel {
    var intercepts: Set<String> { ["boom"] }

    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        if payload["refuse"] != nil { return .refuse("not on \(topic)") }
        socket.push("hello", ["topic": .string(topic)])
        return .ok()
    }

    func handleOut(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleOutResult {
        struct Boom: Error {}
        throw Boom()
    }
}

/// Sessions driven through a socketless transport: no HTTP, no WebSocket, only the session's
/// own rules (what a transport sees of joins, pushes, refusals and channel ends).
@Suite("Sessions over a transport without a socket")
struct SessionTests {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    private func session(unidirectional: Bool, hub: Hub) -> (PhoenixSession, MemoryTransport) {
        var socket = PhoenixSocket(hub: hub)
        socket.channel("room:*", GreeterChannel())
        let transport = MemoryTransport(eventLoop: group.next(), unidirectional: unidirectional)
        let session = PhoenixSession(
            socket: socket,
            transport: transport,
            serializer: .v2,
            connection: transport.connection(),
            logger: Logger(label: "test")
        )
        transport.attach(session)
        return (session, transport)
    }

    /// Calls `join(topics:)` on the session's loop and waits for its outcome.
    private func join(_ session: PhoenixSession, _ topics: [String], payload: JSONValue = .emptyObject) async throws -> PhoenixSession.JoinOutcome {
        let promise = session.eventLoop.makePromise(of: PhoenixSession.JoinOutcome.self)
        session.eventLoop.execute {
            session.start()
            session.join(topics: topics, payload: payload) { promise.succeed($0) }
        }
        return try await promise.futureResult.get()
    }

    @Test("join(topics:) on a unidirectional transport: joined once every channel is subscribed; pushes arrive as SSE events, replies are not sent")
    func joinTopicsOnEventStream() async throws {
        let hub = Hub(nodeID: "n")
        let (session, transport) = session(unidirectional: true, hub: hub)
        #expect(try await join(session, ["room:a", "room:b"]) == .joined)
        // Subscribed by the time the outcome is told: a broadcast made now reaches both channels.
        #expect(hub.localSubscriberCount(topic: "room:a") == 1)
        #expect(hub.localSubscriberCount(topic: "room:b") == 1)
        let pushes = transport.sent
        #expect(pushes.sorted() == ["event: hello\ndata: {\"topic\":\"room:a\"}\n\n", "event: hello\ndata: {\"topic\":\"room:b\"}\n\n"])
        #expect(!pushes.contains { $0.contains("phx_reply") })
        hub.broadcast(topic: "room:a", event: "news", payload: .json(["n": 1]))
        #expect(await transport.wait { sent, _ in sent.contains { $0.contains("event: news\n") } })
        #expect(transport.closeReason == nil)
    }

    @Test("join(topics:) reports the first refused topic with the channel's reason")
    func joinTopicsRefused() async throws {
        let hub = Hub(nodeID: "n")
        let (session, _) = session(unidirectional: true, hub: hub)
        #expect(try await join(session, ["room:a"], payload: ["refuse": true]) == .refused(topic: "room:a", reason: "not on room:a"))
        let (other, _) = self.session(unidirectional: true, hub: hub)
        #expect(try await join(other, ["room:a", "lobby"]) == .refused(topic: "lobby", reason: "unmatched topic"))
    }

    @Test("a unidirectional session ends with its last channel: a crash closes the transport with 1000 'channel crashed'")
    func unidirectionalEndsWithLastChannel() async throws {
        let hub = Hub(nodeID: "n")
        let (session, transport) = session(unidirectional: true, hub: hub)
        #expect(try await join(session, ["room:a", "room:b"]) == .joined)
        hub.broadcast(topic: "room:a", event: "boom", payload: .json([:]))
        // One channel is left: the stream stays open.
        #expect(await transport.wait { _, _ in hub.localSubscriberCount(topic: "room:a") == 0 })
        #expect(transport.closeReason == nil)
        hub.broadcast(topic: "room:b", event: "boom", payload: .json([:]))
        #expect(await transport.wait { _, closed in closed != nil })
        #expect(transport.closeReason == CloseReason(code: 1000, reason: "channel crashed"))
        #expect(hub.localSubscriberCount(topic: "room:b") == 0)
    }

    @Test("a bidirectional session writes Phoenix frames and stays open when its channels end")
    func bidirectionalSessionFrames() async throws {
        let hub = Hub(nodeID: "n")
        let (session, transport) = session(unidirectional: false, hub: hub)
        #expect(try await join(session, ["room:a"]) == .joined)
        let frames = try transport.sent.map { try JSONParser.parse(ByteBuffer(string: $0)) }
        #expect(frames.first == ["1", "1", "room:a", "phx_reply", ["status": "ok", "response": [:]]])
        #expect(frames.contains(["1", nil, "room:a", "hello", ["topic": "room:a"]]))
        hub.broadcast(topic: "room:a", event: "boom", payload: .json([:]))
        #expect(await transport.wait { sent, _ in sent.contains { $0.contains("phx_error") } })
        #expect(transport.closeReason == nil)
    }
}

@Suite("Connect requests and refusals")
struct ConnectRequestTests {
    @Test("bearer tokens: the scheme is case-insensitive, the token trimmed; other schemes and empty tokens are none")
    func bearerToken() {
        #expect(ConnectRequest.bearerToken(authorization: "Bearer abc") == "abc")
        #expect(ConnectRequest.bearerToken(authorization: "bearer  abc ") == "abc")
        #expect(ConnectRequest.bearerToken(authorization: "BEARER x.y.z") == "x.y.z")
        #expect(ConnectRequest.bearerToken(authorization: "Basic abc") == nil)
        #expect(ConnectRequest.bearerToken(authorization: "Bearer ") == nil)
        #expect(ConnectRequest.bearerToken(authorization: "Bearer   ") == nil)
        #expect(ConnectRequest.bearerToken(authorization: nil) == nil)
    }

    @Test("a connect handler that throws a ConnectRefusal refuses with its status and reason; other errors with 403")
    func thrownRefusal() async {
        struct Other: Error {}
        let hub = Hub(nodeID: "n")
        let refusing = PhoenixSocket(hub: hub) { _ in throw ConnectRefusal(status: 401, reason: "token expired") }
        #expect(await refusing.accept(ConnectRequest()).refusal == ConnectRefusal(status: 401, reason: "token expired"))
        let failing = PhoenixSocket(hub: hub) { _ in throw Other() }
        #expect(await failing.accept(ConnectRequest()).refusal == ConnectRefusal(status: 403, reason: nil))
    }

    @Test("the origin policy's refusal is 403 'origin not allowed'; requests without Origin pass")
    func originRefusal() {
        let policy = OriginPolicy.allowList(["https://example.com"])
        #expect(policy.refusal(for: ConnectRequest(headers: [(name: "origin", value: "https://evil.test")])) == .originNotAllowed)
        #expect(policy.refusal(for: ConnectRequest(headers: [(name: "origin", value: "https://example.com")])) == nil)
        #expect(policy.refusal(for: ConnectRequest()) == nil)
    }

    @Test("plain messages on an event stream: one unnamed event, line breaks as several data lines; binary has no form")
    func plainEventStreamSerializer() {
        let text = PlainSerializer.eventStream.encode(text: ByteBuffer(string: "{\"a\":1}"))
        #expect(text.map { String(buffer: $0.bytes) } == "data: {\"a\":1}\n\n")
        let lines = PlainSerializer.eventStream.encode(text: ByteBuffer(string: "one\ntwo"))
        #expect(lines.map { String(buffer: $0.bytes) } == "data: one\ndata: two\n\n")
        #expect(PlainSerializer.eventStream.encode(binary: ByteBuffer(bytes: [1, 2])) == nil)
        #expect(PlainSerializer.webSocket.encode(binary: ByteBuffer(bytes: [1, 2]))?.isBinary == true)
    }
}

/// A chat room for the test kit's own test: join with a user, `say` broadcasts to the room and is
/// answered ok, `whoami` replies with the user.
private struct ChatRoom: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        guard let user = payload["user"]?.stringValue else { return .refuse("user required") }
        socket.assigns["user"] = user
        return .ok(["welcome": .string(user)])
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        switch event {
        case "say":
            socket.broadcast("said", payload)
            return .ok()
        case "whoami":
            return .ok(["user": .string(socket.assigns["user"] ?? "")])
        default:
            return .error(reason: "unknown event")
        }
    }
}

@Suite("ChannelTest: channel code tested without a network")
struct ChannelTestKitTests {
    @Test("join, push, replies, broadcasts and refusals through the test kit")
    func chatRoom() async throws {
        var socket = PhoenixSocket(hub: Hub(nodeID: "n"))
        socket.channel("room:*", ChatRoom())
        let ana = try ChannelTest(socket: socket)
        let bo = try ChannelTest(socket: socket)
        #expect(try await ana.join("room:lobby", ["user": "ana"]) == ["welcome": "ana"])
        try await bo.join("room:lobby", ["user": "bo"])
        let ref = try await ana.push("room:lobby", "say", ["text": "hi"])
        #expect(try await ana.expectReply(ref).status == "ok")
        #expect(try await bo.expectPush("room:lobby", "said") == ["text": "hi"])
        #expect(try await ana.expectPush("room:lobby", "said") == ["text": "hi"])
        let who = try await bo.push("room:lobby", "whoami")
        #expect(try await bo.expectReply(who).response == ["user": "bo"])
        let unknown = try await bo.push("room:lobby", "dance")
        #expect(try await bo.expectReply(unknown).status == "error")
        await #expect(throws: ChannelTest.Failure.self) { try await ana.join("room:other") }
        #expect(try await ana.leave("room:lobby") == "ok")
    }
}
