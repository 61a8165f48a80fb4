import NIOCore
import Switchboard
import SwitchboardTestSupport
import Testing

/// Joins `topic` with join ref = ref = `ref` and consumes the reply and the welcome push.
func join(_ ws: TestWebSocket, _ topic: String, ref: JSONValue, payload: JSONValue = .emptyObject) async throws {
    try await ws.send(json: v2(ref, ref, topic, "phx_join", payload))
    let reply = try await ws.receiveJSON()
    #expect(reply == v2(ref, ref, topic, "phx_reply", okReply(["joined": .string(topic)])))
    #expect(try await ws.receiveJSON() == v2(ref, nil, topic, "welcome", ["topic": .string(topic)]))
}

@Suite("Broadcasts, rooms and disconnects")
struct BroadcastTests {
    @Test("broadcast reaches every subscriber including the sender; broadcast_from skips the sender")
    func broadcastAndBroadcastFrom() async throws {
        try await TestServer.run { server in
            let a = try await server.connect()
            let b = try await server.connect()
            try await join(a, "room:x", ref: "1")
            try await join(b, "room:x", ref: "2")
            try await a.send(json: v2("1", "3", "room:x", "broadcast", ["n": 1]))
            #expect(try await a.receiveJSON() == v2(nil, nil, "room:x", "shout", ["n": 1]))
            #expect(try await b.receiveJSON() == v2(nil, nil, "room:x", "shout", ["n": 1]))
            try await a.send(json: v2("1", "4", "room:x", "broadcast_from", ["n": 2]))
            #expect(try await b.receiveJSON() == v2(nil, nil, "room:x", "shout", ["n": 2]))
            #expect(try await a.frameArriving(within: .milliseconds(200)) == nil)
            await a.close()
            await b.close()
        }
    }

    @Test("broadcast from outside any channel (the hub), with JSON and Encodable payloads, reaches V1 and V2 sockets")
    func hubBroadcast() async throws {
        struct Score: Encodable {
            let home: Int
            let away: Int
        }
        try await TestServer.run { server in
            let a = try await server.connect()
            let v1 = try await server.connect("vsn=1.0.0")
            try await join(a, "room:game", ref: "1")
            try await v1.send(#"{"topic":"room:game","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}"#)
            #expect(
                try await v1.receiveJSON() == ["topic": "room:game", "event": "phx_reply", "payload": okReply(["joined": "room:game"]), "ref": "1"]
            )
            _ = try await v1.receiveJSON()  // welcome
            server.hub.broadcast(topic: "room:game", event: "goal", payload: ["by": "home"])
            try server.hub.broadcast(topic: "room:game", event: "score", encoding: Score(home: 1, away: 0))
            #expect(try await a.receiveJSON() == v2(nil, nil, "room:game", "goal", ["by": "home"]))
            #expect(try await a.receiveJSON() == v2(nil, nil, "room:game", "score", ["home": 1, "away": 0]))
            #expect(try await v1.receiveJSON() == ["topic": "room:game", "event": "goal", "payload": ["by": "home"], "ref": nil])
            #expect(try await v1.receiveJSON() == ["topic": "room:game", "event": "score", "payload": ["home": 1, "away": 0], "ref": nil])
            #expect(server.hub.localSubscriberCount(topic: "room:game") == 2)
            #expect(server.hub.localTopics() == ["room:game": 2])
            await a.close()
            await v1.close()
            #expect(await eventually { server.hub.localSubscriberCount(topic: "room:game") == 0 })
            #expect(await eventually { server.log.all.filter { $0 == "terminate room:game closed" }.count == 2 })
        }
    }

    @Test("intercepted events go through handleOut per subscriber: rewritten with the join ref, or filtered")
    func intercept() async throws {
        try await TestServer.run { server in
            let a = try await server.connect()
            let b = try await server.connect()
            try await join(a, "room:i", ref: "1")
            try await join(b, "room:i", ref: "5")
            server.hub.broadcast(topic: "room:i", event: "rewritten", payload: ["body": "hi"])
            #expect(try await a.receiveJSON() == v2("1", nil, "room:i", "rewritten", ["body": "hi", "editable": true]))
            #expect(try await b.receiveJSON() == v2("5", nil, "room:i", "rewritten", ["body": "hi", "editable": true]))
            try await b.send(json: v2("5", "6", "room:i", "mute"))
            #expect(try await b.receiveJSON() == v2("5", "6", "room:i", "phx_reply", okReply()))
            server.hub.broadcast(topic: "room:i", event: "filtered", payload: ["n": 1])
            server.hub.broadcast(topic: "room:i", event: "plain", payload: ["n": 2])
            #expect(try await a.receiveJSON() == v2("1", nil, "room:i", "filtered", ["n": 1, "editable": true]))
            #expect(try await a.receiveJSON() == v2(nil, nil, "room:i", "plain", ["n": 2]))
            #expect(try await b.receiveJSON() == v2(nil, nil, "room:i", "plain", ["n": 2]))
            #expect(try await b.frameArriving(within: .milliseconds(200)) == nil)
            await a.close()
            await b.close()
        }
    }

    @Test("rooms: a channel joins a room, room broadcasts arrive as pushes on its topic, members are listed, close leaves")
    func rooms() async throws {
        try await TestServer.run { server in
            let a = try await server.connect("vsn=2.0.0&user=ann")
            let b = try await server.connect("vsn=2.0.0&user=bob")
            try await join(a, "room:a", ref: "1", payload: ["room": "vip"])
            try await join(b, "room:b", ref: "2")
            #expect(server.hub.localConnections(topic: "vip").map(\.socketID) == ["user_socket:ann"])
            try await b.send(json: v2("2", "3", "room:b", "join_room", ["room": "vip"]))
            #expect(try await b.receiveJSON() == v2("2", "3", "room:b", "phx_reply", okReply()))
            #expect(Set(server.hub.localConnections(topic: "vip").compactMap(\.socketID)) == ["user_socket:ann", "user_socket:bob"])
            server.hub.broadcast(topic: "vip", event: "offer", payload: ["pct": 10])
            #expect(try await a.receiveJSON() == v2("1", nil, "room:a", "offer", ["pct": 10]))
            #expect(try await b.receiveJSON() == v2("2", nil, "room:b", "offer", ["pct": 10]))
            try await b.send(json: v2("2", "4", "room:b", "leave_room", ["room": "vip"]))
            #expect(try await b.receiveJSON() == v2("2", "4", "room:b", "phx_reply", okReply()))
            server.hub.broadcast(topic: "vip", event: "offer", payload: ["pct": 20])
            #expect(try await a.receiveJSON() == v2("1", nil, "room:a", "offer", ["pct": 20]))
            #expect(try await b.frameArriving(within: .milliseconds(200)) == nil)
            await a.close()
            #expect(await eventually { server.hub.localSubscriberCount(topic: "vip") == 0 })
            await b.close()
        }
    }

    @Test("disconnect(socketID:) closes every socket with that id with 1001 and leaves others alone")
    func disconnectBySocketID() async throws {
        try await TestServer.run { server in
            let a1 = try await server.connect("vsn=2.0.0&user=7")
            let a2 = try await server.connect("vsn=2.0.0&user=7")
            let other = try await server.connect("vsn=2.0.0&user=8")
            try await join(a1, "room:d", ref: "1")
            try await join(other, "room:d", ref: "1")
            server.hub.disconnect(socketID: "user_socket:7")
            #expect(try await a1.receive() == .close(code: 1001, reason: "disconnected"))
            #expect(try await a2.receive() == .close(code: 1001, reason: "disconnected"))
            try await other.send(json: v2(nil, "2", "phoenix", "heartbeat"))
            #expect(try await other.receiveJSON() == v2(nil, "2", "phoenix", "phx_reply", okReply()))
            #expect(await eventually { server.hub.localSubscriberCount(topic: "room:d") == 1 })
            #expect(await eventually { server.hub.localSubscriberCount(topic: "user_socket:7") == 0 })
            await a1.close()
            await a2.close()
            await other.close()
        }
    }

    @Test("connect assigns and socket id are visible to channels")
    func assignsVisible() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect("vsn=2.0.0&user=zoe")
            try await join(ws, "room:w", ref: "1")
            try await ws.send(json: v2("1", "2", "room:w", "whoami"))
            #expect(try await ws.receiveJSON() == v2("1", "2", "room:w", "phx_reply", okReply(["user": "zoe", "socket_id": "user_socket:zoe"])))
            await ws.close()
        }
    }

    @Test("a client that stops reading is disconnected as a slow consumer; the others get every message")
    func slowConsumer() async throws {
        var configuration = PhoenixSocket.Configuration()
        configuration.maxQueuedBytes = 64 * 1024
        try await TestServer.run(configuration: configuration) { server in
            let slow = try await server.connect()
            let fast = try await server.connect()
            try await join(slow, "room:s", ref: "1")
            try await join(fast, "room:s", ref: "1")
            try await slow.stopReading()
            let body = String(repeating: "x", count: 1000)
            let count = 12000  // 12 MB: far beyond the 64 KiB queue limit plus the kernel's socket buffers, whatever the write sizes
            let received = Task { try await fast.countTextFrames(upTo: count) }
            for i in 0..<count {
                server.hub.broadcast(topic: "room:s", event: "data", payload: ["i": .int(Int64(i)), "body": .string(body)])
                if i % 200 == 0 { try await Task.sleep(for: .milliseconds(5)) }
            }
            #expect(try await received.value == count)
            // The slow connection was closed by the server, which frees its queue.
            #expect(await eventually { server.hub.localSubscriberCount(topic: "room:s") == 1 })
            #expect(server.log.all.contains("terminate room:s closed"))
            await slow.close()
            await fast.close()
        }
    }
}
