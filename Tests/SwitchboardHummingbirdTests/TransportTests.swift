import NIOCore
import Switchboard
import SwitchboardTestSupport
import Testing

@Suite("WebSocket transport: handshake, serializers, bad input, timeouts")
struct TransportTests {
    @Test("no vsn speaks V1: server frames have exactly topic, event, payload, ref")
    func v1Default() async throws {
        try await TestServer.run { server in
            let ws = try await TestWebSocket.connect(port: server.port, path: "/socket/websocket")
            try await ws.send(#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":null}"#)
            #expect(try await ws.receiveJSON() == ["topic": "phoenix", "event": "phx_reply", "payload": okReply(), "ref": nil])
            try await ws.send(#"{"topic":"room:v1","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}"#)
            let reply = try await ws.receiveJSON()
            #expect(reply.objectValue.map { Set($0.keys) } == ["topic", "event", "payload", "ref"])
            #expect(reply == ["topic": "room:v1", "event": "phx_reply", "payload": okReply(["joined": "room:v1"]), "ref": "1"])
            // JSON in a binary frame is accepted (phx-events sends that way).
            try await ws.sendBinary(Array(#"{"topic":"room:v1","event":"ping","payload":{"b":1},"ref":2}"#.utf8))
            _ = try await ws.receiveJSON()  // welcome push
            #expect(try await ws.receiveJSON() == ["topic": "room:v1", "event": "phx_reply", "payload": okReply(["b": 1]), "ref": 2])
            await ws.close()
        }
    }

    @Test("vsn 2.0.5 is V2; 2.1.0, 3.0.0 and garbage are refused with 403 before the upgrade")
    func vsnNegotiation() async throws {
        try await TestServer.run { server in
            let ok = try await server.connect("vsn=2.0.5")
            try await ok.send(json: v2(nil, "1", "phoenix", "heartbeat"))
            #expect(try await ok.receiveJSON() == v2(nil, "1", "phoenix", "phx_reply", okReply()))
            await ok.close()
            for vsn in ["2.1.0", "3.0.0", "2", "abc"] {
                await #expect(throws: TestWebSocketError.handshakeFailed(status: 403, body: #"{"error":"unsupported vsn"}"#)) {
                    _ = try await server.connect("vsn=\(vsn)")
                }
            }
        }
    }

    @Test("a refused connect is an HTTP 403 with a JSON reason; no socket is opened")
    func refusedConnect() async throws {
        try await TestServer.run { server in
            await #expect(throws: TestWebSocketError.handshakeFailed(status: 403, body: #"{"error":"denied by test"}"#)) {
                _ = try await server.connect("vsn=2.0.0&deny=1")
            }
        }
    }

    @Test("phoenix.js authToken: the subprotocol token reaches connect and the response selects 'phoenix'")
    func authTokenSubprotocol() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect(headers: [("Sec-WebSocket-Protocol", "phoenix, base64url.bearer.phx.dG9r")])
            #expect(ws.responseHeaders["sec-websocket-protocol"] == "phoenix")
            try await join(ws, "room:t", ref: "1")
            try await ws.send(json: v2("1", "2", "room:t", "whoami"))
            #expect(try await ws.receiveJSON() == v2("1", "2", "room:t", "phx_reply", okReply(["user": "token:tok", "socket_id": nil])))
            await ws.close()
            await #expect(throws: TestWebSocketError.handshakeFailed(status: 403, body: "")) {
                _ = try await server.connect(headers: [("Sec-WebSocket-Protocol", "phoenix, base64url.bearer.phx.YmFk")])
            }
        }
    }

    @Test("binary: a kind-0 push reaches the handler as bytes, the reply is kind 1, a binary broadcast is kind 2 (V1 skips it)")
    func binaryFrames() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            let v1 = try await server.connect("vsn=1.0.0")
            try await join(ws, "room:1", ref: "1")
            try await v1.send(#"{"topic":"room:1","event":"phx_join","payload":{},"ref":"1"}"#)
            _ = try await v1.receiveJSON()
            _ = try await v1.receiveJSON()
            // join_ref "1", ref "5", topic "room:1", event "up", payload aa
            try await ws.sendBinary([0x00, 0x01, 0x01, 0x06, 0x02, 0x31, 0x35, 0x72, 0x6f, 0x6f, 0x6d, 0x3a, 0x31, 0x75, 0x70, 0xaa])
            #expect(
                try await ws.receive() == .binary([0x01, 0x01, 0x01, 0x06, 0x02, 0x31, 0x35, 0x72, 0x6f, 0x6f, 0x6d, 0x3a, 0x31, 0x6f, 0x6b, 0xaa])
            )
            server.hub.broadcast(topic: "room:1", event: "tick", payload: .binary(ByteBuffer(bytes: [0xcc])))
            server.hub.broadcast(topic: "room:1", event: "after", payload: .emptyObject)
            #expect(try await ws.receive() == .binary([0x02, 0x06, 0x04, 0x72, 0x6f, 0x6f, 0x6d, 0x3a, 0x31, 0x74, 0x69, 0x63, 0x6b, 0xcc]))
            #expect(try await ws.receiveJSON() == v2(nil, nil, "room:1", "after"))
            #expect(try await v1.receiveJSON() == ["topic": "room:1", "event": "after", "payload": .emptyObject, "ref": nil])
            await ws.close()
            await v1.close()
        }
    }

    @Test("malformed JSON closes with 1007 and a reason; other connections are unaffected")
    func malformedJSON() async throws {
        try await TestServer.run { server in
            let bystander = try await server.connect()
            try await join(bystander, "room:b", ref: "1")
            for bad in ["garbage", "[1,2,3]", #"{"topic":"x","event":"y"}"#, "[null,\"1\",5,\"e\",{}]", "42"] {
                let ws = try await server.connect()
                try await ws.send(bad)
                guard case .close(let code, let reason) = try await ws.receive() else {
                    Issue.record("expected a close frame for \(bad)")
                    continue
                }
                #expect(code == 1007)
                #expect(reason.hasPrefix("invalid message"))
                await ws.close()
            }
            server.hub.broadcast(topic: "room:b", event: "still", payload: .emptyObject)
            #expect(try await bystander.receiveJSON() == v2(nil, nil, "room:b", "still"))
            await bystander.close()
        }
    }

    @Test("a frame of the other protocol version's shape closes with 1007: a V1 object on V2, a V2 array on V1")
    func otherVersionsShape() async throws {
        try await TestServer.run { server in
            let cases: [(query: String, frame: String, reason: String)] = [
                (
                    "vsn=2.0.0", #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}"#,
                    "invalid message: vsn 2.0.0 messages are JSON arrays, not objects"
                ),
                ("vsn=1.0.0", #"[null,"1","phoenix","heartbeat",{}]"#, "invalid message: vsn 1.0.0 messages are JSON objects, not arrays"),
            ]
            for (query, frame, expected) in cases {
                let ws = try await server.connect(query)
                try await ws.send(frame)
                #expect(try await ws.receive() == .close(code: 1007, reason: expected), "\(query): \(frame)")
                await ws.close()
            }
            // Each version's own shape is still answered.
            let v1 = try await server.connect("vsn=1.0.0")
            try await v1.send(#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}"#)
            #expect(try await v1.receiveJSON() == ["topic": "phoenix", "event": "phx_reply", "payload": okReply(), "ref": "1"])
            await v1.close()
        }
    }

    @Test("an unknown binary kind, or binary on V1, closes with 1003")
    func unsupportedBinary() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await ws.sendBinary([0x07, 0x00])
            guard case .close(let code, _) = try await ws.receive() else { throw TestFailure("expected close") }
            #expect(code == 1003)
            let v1 = try await server.connect("vsn=1.0.0")
            try await v1.sendBinary([0x00, 0x01, 0x01, 0x01, 0x01, 0x31, 0x31, 0x61, 0x62])
            guard case .close(let code1, _) = try await v1.receive() else { throw TestFailure("expected close") }
            #expect(code1 == 1003)
            let truncated = try await server.connect()
            try await truncated.sendBinary([0x00, 0x05, 0x01])
            guard case .close(let code2, _) = try await truncated.receive() else { throw TestFailure("expected close") }
            #expect(code2 == 1003)
        }
    }

    @Test("a message over the size limit closes with 1009, also when it arrives in fragments")
    func oversized() async throws {
        var configuration = PhoenixSocket.Configuration()
        configuration.maxMessageSize = 1024
        try await TestServer.run(configuration: configuration) { server in
            let ws = try await server.connect()
            let big = #"[null,"1","phoenix","heartbeat",{"pad":""# + String(repeating: "x", count: 2000) + #""}]"#
            try await ws.send(big)
            #expect(try await ws.receive() == .close(code: 1009, reason: "message too big"))
            let fragmented = try await server.connect()
            try await fragmented.sendFrame(opcode: 0x1, payload: Array(repeating: 0x20, count: 800), fin: false)
            try await fragmented.sendFrame(opcode: 0x0, payload: Array(repeating: 0x20, count: 800), fin: true)
            #expect(try await fragmented.receive() == .close(code: 1009, reason: "message too big"))
            // A fragmented message within the limit is reassembled.
            let ok = try await server.connect()
            let text = Array(#"[null,"2","phoenix","heartbeat",{}]"#.utf8)
            try await ok.sendFrame(opcode: 0x1, payload: Array(text[..<10]), fin: false)
            try await ok.sendFrame(opcode: 0x0, payload: Array(text[10...]), fin: true)
            #expect(try await ok.receiveJSON() == v2(nil, "2", "phoenix", "phx_reply", okReply()))
            await ok.close()
        }
    }

    @Test("idle timeout closes with 1002; pings alone keep a connection open and are answered with pongs")
    func idleTimeout() async throws {
        var configuration = PhoenixSocket.Configuration()
        configuration.idleTimeout = .milliseconds(1500)
        try await TestServer.run(configuration: configuration) { server in
            let idle = try await server.connect()
            let pinging = try await server.connect()
            for i in 0..<12 {
                try await pinging.sendFrame(opcode: 0x9, payload: [UInt8(i)])
                #expect(try await pinging.receive() == .pong([UInt8(i)]))
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(try await idle.receive(timeout: .seconds(10)) == .close(code: 1002, reason: "idle timeout"))
            try await pinging.send(json: v2(nil, "1", "phoenix", "heartbeat"))
            #expect(try await pinging.receiveJSON() == v2(nil, "1", "phoenix", "phx_reply", okReply()))
            await pinging.close()
        }
    }

    @Test("a client close frame is answered with a close and the connection's channels terminate")
    func clientClose() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await join(ws, "room:c", ref: "1")
            try await ws.sendFrame(opcode: 0x8, payload: [0x03, 0xE8])
            #expect(try await ws.receive() == .close(code: 1000, reason: ""))
            #expect(await eventually { server.log.all.contains("terminate room:c closed") })
            #expect(server.hub.localSubscriberCount(topic: "room:c") == 0)
        }
    }
}

@Suite("Origin check")
struct OriginCheckTests {
    @Test("an Origin outside the allow-list is refused with 403 before the upgrade; no Origin and allowed origins connect")
    func originCheck() async throws {
        var configuration = PhoenixSocket.Configuration()
        configuration.checkOrigin = .allowList(["https://app.example", "//*.example.org"])
        try await TestServer.run(configuration: configuration) { server in
            await #expect(throws: TestWebSocketError.handshakeFailed(status: 403, body: #"{"error":"origin not allowed"}"#)) {
                _ = try await server.connect(headers: [("Origin", "https://evil.example")])
            }
            for headers in [[], [("Origin", "https://app.example")], [("Origin", "http://www.example.org:8080")]] {
                let ws = try await server.connect(headers: headers)
                try await ws.send(json: v2(nil, "1", "phoenix", "heartbeat"))
                #expect(try await ws.receiveJSON() == v2(nil, "1", "phoenix", "phx_reply", okReply()))
                await ws.close()
            }
        }
    }
}
