import NIOCore
import Switchboard
import SwitchboardTestSupport
import Testing

/// A V2 frame as a JSON value.
func v2(_ joinRef: JSONValue, _ ref: JSONValue, _ topic: String, _ event: String, _ payload: JSONValue = .emptyObject) -> JSONValue {
    .array([joinRef, ref, .string(topic), .string(event), payload])
}

func okReply(_ response: JSONValue = .emptyObject) -> JSONValue { ["status": "ok", "response": response] }
func errorReply(_ reason: String) -> JSONValue { ["status": "error", "response": ["reason": .string(reason)]] }

/// The conformance scenarios of the protocol doc (§20), over real sockets.
@Suite("Phoenix protocol over WebSocket")
struct PhoenixProtocolTests {
    @Test("heartbeat is answered before any join, also with a null ref")
    func heartbeat() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await ws.send(json: v2(nil, "1", "phoenix", "heartbeat"))
            #expect(try await ws.receiveJSON() == v2(nil, "1", "phoenix", "phx_reply", okReply()))
            try await ws.send(json: v2(nil, nil, "phoenix", "heartbeat"))
            #expect(try await ws.receiveJSON() == v2(nil, nil, "phoenix", "phx_reply", okReply()))
            await ws.close()
        }
    }

    @Test("join, event with reply, push after join, leave with reply then phx_close, then unmatched topic")
    func joinEventLeave() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await ws.send(json: v2("1", "1", "room:lobby", "phx_join"))
            #expect(try await ws.receiveJSON() == v2("1", "1", "room:lobby", "phx_reply", okReply(["joined": "room:lobby"])))
            // A push made inside join arrives after the join reply, stamped with the join ref.
            #expect(try await ws.receiveJSON() == v2("1", nil, "room:lobby", "welcome", ["topic": "room:lobby"]))
            try await ws.send(json: v2("1", "2", "room:lobby", "ping", ["x": 1]))
            #expect(try await ws.receiveJSON() == v2("1", "2", "room:lobby", "phx_reply", okReply(["x": 1])))
            try await ws.send(json: v2("1", "3", "room:lobby", "push_me", ["y": 2]))
            #expect(try await ws.receiveJSON() == v2("1", nil, "room:lobby", "pushed", ["y": 2]))
            #expect(try await ws.receiveJSON() == v2("1", "3", "room:lobby", "phx_reply", okReply()))
            try await ws.send(json: v2("1", "4", "room:lobby", "custom_status"))
            #expect(try await ws.receiveJSON() == v2("1", "4", "room:lobby", "phx_reply", ["status": "queued", "response": .emptyObject]))
            try await ws.send(json: v2("1", "5", "room:lobby", "phx_leave"))
            #expect(try await ws.receiveJSON() == v2("1", "5", "room:lobby", "phx_reply", okReply()))
            #expect(try await ws.receiveJSON() == v2("1", "1", "room:lobby", "phx_close"))
            try await ws.send(json: v2("1", "6", "room:lobby", "ping"))
            #expect(try await ws.receiveJSON() == v2(nil, "6", "room:lobby", "phx_reply", errorReply("unmatched topic")))
            #expect(await eventually { server.log.all.contains("terminate room:lobby left") })
            await ws.close()
        }
    }

    @Test("a topic no route matches gets 'unmatched topic' on join; leave of an unjoined topic is ok")
    func unmatchedTopic() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await ws.send(json: v2("5", "5", "nope", "phx_join"))
            #expect(try await ws.receiveJSON() == v2(nil, "5", "nope", "phx_reply", errorReply("unmatched topic")))
            // Exact routes do not match longer topics.
            try await ws.send(json: v2("6", "6", "exactly", "phx_join"))
            #expect(try await ws.receiveJSON() == v2(nil, "6", "exactly", "phx_reply", errorReply("unmatched topic")))
            try await ws.send(json: v2(nil, "11", "room:7", "phx_leave"))
            #expect(try await ws.receiveJSON() == v2(nil, "11", "room:7", "phx_reply", okReply()))
            await ws.close()
        }
    }

    @Test("a refused join gets the app's error, no phx_close, and the topic stays unjoined")
    func refusedJoin() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await ws.send(json: v2("1", "1", "room:vip", "phx_join", ["refuse": "unauthorized"]))
            #expect(try await ws.receiveJSON() == v2("1", "1", "room:vip", "phx_reply", errorReply("unauthorized")))
            try await ws.send(json: v2("1", "2", "room:vip", "ping"))
            #expect(try await ws.receiveJSON() == v2(nil, "2", "room:vip", "phx_reply", errorReply("unmatched topic")))
            try await ws.send(json: v2("3", "3", "room:other", "phx_join", ["crash": true]))
            #expect(try await ws.receiveJSON() == v2("3", "3", "room:other", "phx_reply", errorReply("join crashed")))
            try await ws.send(json: v2(nil, "4", "phoenix", "heartbeat"))
            #expect(try await ws.receiveJSON() == v2(nil, "4", "phoenix", "phx_reply", okReply()))
            await ws.close()
        }
    }

    @Test("a throwing handler sends phx_error to that topic only; the socket and other channels keep working")
    func crash() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await ws.send(json: v2("1", "1", "room:a", "phx_join"))
            _ = try await ws.receiveJSON()
            _ = try await ws.receiveJSON()  // welcome
            try await ws.send(json: v2("2", "2", "room:b", "phx_join"))
            _ = try await ws.receiveJSON()
            _ = try await ws.receiveJSON()
            try await ws.send(json: v2("1", "3", "room:a", "boom"))
            #expect(try await ws.receiveJSON() == v2("1", "1", "room:a", "phx_error", ["reason": "channel_crash"]))
            try await ws.send(json: v2("2", "4", "room:b", "ping", ["still": "here"]))
            #expect(try await ws.receiveJSON() == v2("2", "4", "room:b", "phx_reply", okReply(["still": "here"])))
            try await ws.send(json: v2("1", "5", "room:a", "ping"))
            #expect(try await ws.receiveJSON() == v2(nil, "5", "room:a", "phx_reply", errorReply("unmatched topic")))
            try await ws.send(json: v2("6", "6", "room:a", "phx_join"))
            #expect(try await ws.receiveJSON() == v2("6", "6", "room:a", "phx_reply", okReply(["joined": "room:a"])))
            #expect(await eventually { server.log.all.contains { $0.hasPrefix("terminate room:a crashed") } })
            await ws.close()
        }
    }

    @Test("stop from handleIn replies, then phx_close")
    func stop() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await ws.send(json: v2("1", "1", "room:a", "phx_join"))
            _ = try await ws.receiveJSON()
            _ = try await ws.receiveJSON()
            try await ws.send(json: v2("1", "2", "room:a", "stop"))
            #expect(try await ws.receiveJSON() == v2("1", "2", "room:a", "phx_reply", okReply(["bye": true])))
            #expect(try await ws.receiveJSON() == v2("1", "1", "room:a", "phx_close"))
            await ws.close()
        }
    }

    @Test("a second join of a topic closes the first instance first; stale join refs are dropped")
    func duplicateJoinAndStaleRefs() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await ws.send(json: v2("1", "1", "room:lobby", "phx_join"))
            _ = try await ws.receiveJSON()
            _ = try await ws.receiveJSON()
            try await ws.send(json: v2("2", "2", "room:lobby", "phx_join"))
            #expect(try await ws.receiveJSON() == v2("1", "1", "room:lobby", "phx_close"))
            #expect(try await ws.receiveJSON() == v2("2", "2", "room:lobby", "phx_reply", okReply(["joined": "room:lobby"])))
            #expect(try await ws.receiveJSON() == v2("2", nil, "room:lobby", "welcome", ["topic": "room:lobby"]))
            // Stale join ref: dropped silently.
            try await ws.send(json: v2("1", "9", "room:lobby", "ping"))
            #expect(try await ws.frameArriving(within: .milliseconds(200)) == nil)
            // Null join ref: delivered.
            try await ws.send(json: v2(nil, "10", "room:lobby", "ping"))
            #expect(try await ws.receiveJSON() == v2("2", "10", "room:lobby", "phx_reply", okReply()))
            // A stale leave gets no reply.
            try await ws.send(json: v2("1", "11", "room:lobby", "phx_leave"))
            #expect(try await ws.frameArriving(within: .milliseconds(200)) == nil)
            #expect(server.hub.localSubscriberCount(topic: "room:lobby") == 1)
            #expect(await eventually { server.log.all.contains("terminate room:lobby replaced") })
            await ws.close()
        }
    }

    @Test("messages right after a join, without waiting for its reply, see the join's outcome")
    func pipelinedJoin() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await ws.send(json: v2("1", "1", "room:fast", "phx_join"))
            try await ws.send(json: v2("1", "2", "room:fast", "count"))
            try await ws.send(json: v2("1", "3", "room:fast", "count"))
            #expect(try await ws.receiveJSON() == v2("1", "1", "room:fast", "phx_reply", okReply(["joined": "room:fast"])))
            #expect(try await ws.receiveJSON() == v2("1", nil, "room:fast", "welcome", ["topic": "room:fast"]))
            #expect(try await ws.receiveJSON() == v2("1", "2", "room:fast", "phx_reply", okReply(["n": 1])))
            #expect(try await ws.receiveJSON() == v2("1", "3", "room:fast", "phx_reply", okReply(["n": 2])))
            await ws.close()
        }
    }

    @Test("callbacks for one topic run in order even when they await")
    func orderedCallbacks() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await ws.send(json: v2("1", "1", "room:o", "phx_join"))
            _ = try await ws.receiveJSON()
            _ = try await ws.receiveJSON()
            try await ws.send(json: v2("1", "2", "room:o", "slow"))
            try await ws.send(json: v2("1", "3", "room:o", "ping"))
            #expect(try await ws.receiveJSON() == v2("1", "2", "room:o", "phx_reply", okReply(["slow": true])))
            #expect(try await ws.receiveJSON() == v2("1", "3", "room:o", "phx_reply", okReply()))
            await ws.close()
        }
    }

    @Test("integer and null refs are echoed with their type")
    func refTypes() async throws {
        try await TestServer.run { server in
            let ws = try await server.connect()
            try await ws.send(json: v2(nil, 7, "phoenix", "heartbeat"))
            #expect(try await ws.receiveJSON() == v2(nil, 7, "phoenix", "phx_reply", okReply()))
            try await ws.send(json: v2(3, 3, "room:int", "phx_join"))
            #expect(try await ws.receiveJSON() == v2(3, 3, "room:int", "phx_reply", okReply(["joined": "room:int"])))
            #expect(try await ws.receiveJSON() == v2(3, nil, "room:int", "welcome", ["topic": "room:int"]))
            try await ws.send(json: v2(3, 4, "room:int", "ping"))
            #expect(try await ws.receiveJSON() == v2(3, 4, "room:int", "phx_reply", okReply()))
            await ws.close()
        }
    }

    @Test("too many channels: the join past the limit is refused")
    func channelLimit() async throws {
        var configuration = PhoenixSocket.Configuration()
        configuration.maxChannels = 2
        try await TestServer.run(configuration: configuration) { server in
            let ws = try await server.connect()
            for (i, topic) in ["room:1", "room:2"].enumerated() {
                let ref = JSONValue.string("\(i + 1)")
                try await ws.send(json: v2(ref, ref, topic, "phx_join"))
                #expect(try await ws.receiveJSON() == v2(ref, ref, topic, "phx_reply", okReply(["joined": .string(topic)])))
                _ = try await ws.receiveJSON()
            }
            try await ws.send(json: v2("3", "3", "room:3", "phx_join"))
            #expect(try await ws.receiveJSON() == v2("3", "3", "room:3", "phx_reply", errorReply("too many channels joined")))
            // Rejoining an already joined topic is not a new channel.
            try await ws.send(json: v2("4", "4", "room:2", "phx_join"))
            #expect(try await ws.receiveJSON() == v2("2", "2", "room:2", "phx_close"))
            #expect(try await ws.receiveJSON() == v2("4", "4", "room:2", "phx_reply", okReply(["joined": "room:2"])))
            await ws.close()
        }
    }
}
