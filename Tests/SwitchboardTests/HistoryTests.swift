import Foundation
import NIOCore
import Switchboard
import SwitchboardTestSupport
import Testing

@Suite("Topic streams: positions, trimming, recovery")
struct TopicStreamTests {
    func stream(size: Int = 5, ttl: Duration = .seconds(60), maxRecover: Int = 3) -> TopicStream {
        TopicStream(epoch: "e1", policy: HistoryPolicy(size: size, ttl: ttl, maxRecover: maxRecover))
    }

    @Test("offsets count from 1; the position names the newest (0 before the first)")
    func offsets() {
        var s = stream()
        #expect(s.position == StreamPosition(epoch: "e1", offset: 0))
        #expect(s.append(event: "a", payload: .json(["n": 1]), now: 1000) == StreamPosition(epoch: "e1", offset: 1))
        #expect(s.append(event: "b", payload: .json(["n": 2]), now: 1001).offset == 2)
        #expect(s.position.description == "e1:2")
        #expect(StreamPosition("e1:2") == s.position)
        for bad in ["", "e1", ":3", "e1:-1", "e1:x", "a:b:3"] { #expect(StreamPosition(bad) == nil, "\(bad)") }
        #expect(StreamPosition(json: ["epoch": "e1", "offset": 4]) == StreamPosition(epoch: "e1", offset: 4))
        #expect(StreamPosition(json: ["epoch": "e1", "offset": -1]) == nil)
        #expect(StreamPosition(json: ["offset": 4]) == nil)
    }

    @Test("size and TTL trim; an expired message is never returned even before a trim")
    func trimming() {
        var s = stream(size: 3, ttl: .seconds(10))
        for i in 1...5 { _ = s.append(event: "m", payload: .json(["i": .int(Int64(i))]), now: 1000 + Int64(i)) }
        #expect(s.kept(now: 2000).map(\.offset) == [3, 4, 5])
        #expect(s.kept(now: 11_004).map(\.offset) == [5], "3 and 4 are older than 10 s at 11.004 s")
        #expect(s.kept(now: 20_000).isEmpty)
    }

    @Test("recovery: exactly what was missed, or not at all")
    func recovery() {
        var s = stream(size: 5, ttl: .seconds(60), maxRecover: 3)
        for i in 1...6 { _ = s.append(event: "m", payload: .json(["i": .int(Int64(i))]), now: 1000) }
        let current = StreamPosition(epoch: "e1", offset: 6)
        // Kept: 2…6. Missed after 3: 4, 5, 6 (three: exactly max_recover still recovers).
        #expect(
            s.recover(since: StreamPosition(epoch: "e1", offset: 3), now: 1000) == .recovered(Array(s.kept(now: 1000).suffix(3)), current: current)
        )
        #expect(s.recover(since: current, now: 1000) == .recovered([], current: current))
        #expect(s.recover(since: StreamPosition(epoch: "e1", offset: 2), now: 1000) == .notRecovered(current: current), "four missed > max_recover")
        #expect(s.recover(since: StreamPosition(epoch: "e2", offset: 5), now: 1000) == .notRecovered(current: current), "another epoch")
        #expect(s.recover(since: StreamPosition(epoch: "e1", offset: 7), now: 1000) == .notRecovered(current: current), "from the future")
        var wide = stream(size: 2, ttl: .seconds(60), maxRecover: 100)
        for _ in 1...5 { _ = wide.append(event: "m", payload: .json([:]), now: 1000) }
        #expect(wide.recover(since: StreamPosition(epoch: "e1", offset: 2), now: 1000) == .notRecovered(current: wide.position), "3 is gone")
        #expect(wide.recover(since: StreamPosition(epoch: "e1", offset: 3), now: 1000) != .notRecovered(current: wide.position))
        #expect(wide.recover(since: StreamPosition(epoch: "e1", offset: 3), now: 70_000) == .notRecovered(current: wide.position), "expired")
    }
}

/// Joins anyone; `echo` broadcasts its payload.
struct EchoChannel: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult { .ok() }
}

@Suite("History through the hub and the Phoenix join")
struct HistoryJoinTests {
    func makeSocket(size: Int = 100, maxRecover: Int = 1000) -> (Hub, PhoenixSocket) {
        var configuration = History.Configuration()
        configuration.policy = { $0.hasPrefix("h:") ? HistoryPolicy(size: size, ttl: .seconds(60), maxRecover: maxRecover) : nil }
        let hub = Hub(nodeID: "n", history: configuration)
        var socket = PhoenixSocket(hub: hub)
        socket.channel("*", EchoChannel())
        return (hub, socket)
    }

    /// The broadcast frames of `topic` a client received, as (ref, payload).
    func broadcasts(_ client: ChannelTest, _ topic: String) -> [(ref: JSONValue, payload: JSONValue)] {
        client.frames.compactMap { frame in
            guard let f = frame.arrayValue, f.count == 5, f[2] == .string(topic), f[3] == "msg" else { return nil }
            return (f[1], f[4])
        }
    }

    func waitFor(_ count: Int, _ client: ChannelTest, _ topic: String) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while broadcasts(client, topic).count < count {
            guard ContinuousClock.now < deadline else { throw Failure("\(count) broadcasts on \(topic): got \(broadcasts(client, topic).count)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    @Test("join replies carry the position; broadcasts carry theirs as the ref; topics without history are as before")
    func positions() async throws {
        let (hub, socket) = makeSocket()
        let client = try ChannelTest(socket: socket)
        let reply = try await client.join("h:1")
        let epoch = try #require(reply["position"]?["epoch"]?.stringValue)
        #expect(reply == ["position": ["epoch": .string(epoch), "offset": 0]])
        #expect(reply["recovered"] == nil, "no recover asked, no recovered key")
        #expect(try await client.join("plain:1") == .emptyObject)
        for i in 1...3 { hub.broadcast(topic: "h:1", event: "msg", payload: ["i": .int(Int64(i))]) }
        hub.broadcast(topic: "plain:1", event: "msg", payload: ["i": 1])
        var ephemeral = Broadcast(topic: "h:1", event: "msg", payload: .json(["typing": true]))
        ephemeral.recordsHistory = false
        hub.publish(ephemeral)
        hub.broadcast(topic: "h:1", event: "msg", payload: ["i": 4])
        try await waitFor(5, client, "h:1")
        try await waitFor(1, client, "plain:1")
        #expect(broadcasts(client, "h:1").map(\.ref.stringValue) == ["\(epoch):1", "\(epoch):2", "\(epoch):3", nil, "\(epoch):4"])
        #expect(broadcasts(client, "plain:1").map(\.ref) == [.null])
        #expect(hub.history.position(of: "h:1") == StreamPosition(epoch: epoch, offset: 4), "the ephemeral one took no offset")
        #expect(hub.history.position(of: "plain:1") == nil)
    }

    @Test("a rejoin with its last position gets exactly what it missed, then live ones; impossible recoveries say so")
    func recovery() async throws {
        let (hub, socket) = makeSocket(maxRecover: 5)
        let first = try ChannelTest(socket: socket)
        let epoch = try #require(try await first.join("h:r")["position"]?["epoch"]?.stringValue)
        for i in 1...2 { hub.broadcast(topic: "h:r", event: "msg", payload: ["i": .int(Int64(i))]) }
        try await waitFor(2, first, "h:r")
        // Gone; three more are published meanwhile.
        for i in 3...5 { hub.broadcast(topic: "h:r", event: "msg", payload: ["i": .int(Int64(i))]) }
        let back = try ChannelTest(socket: socket)
        let reply = try await back.join("h:r", ["recover": ["epoch": .string(epoch), "offset": 2], "other": "kept"])
        #expect(reply == ["recovered": true, "position": ["epoch": .string(epoch), "offset": 5]])
        hub.broadcast(topic: "h:r", event: "msg", payload: ["i": 6])
        try await waitFor(4, back, "h:r")
        #expect(broadcasts(back, "h:r").map(\.payload) == [["i": 3], ["i": 4], ["i": 5], ["i": 6]])
        #expect(broadcasts(back, "h:r").map(\.ref.stringValue) == ["\(epoch):3", "\(epoch):4", "\(epoch):5", "\(epoch):6"])

        for (recover, why) in [
            (["epoch": "another", "offset": 2] as JSONValue, "another epoch"),
            (["epoch": .string(epoch), "offset": 0], "six missed > max_recover 5"),
            (["epoch": .string(epoch), "offset": 99], "from the future"),
            ("garbage", "not a position"),
        ] {
            let late = try ChannelTest(socket: socket)
            let newest = try #require(hub.history.position(of: "h:r"))
            let refused = try await late.join("h:r", ["recover": recover])
            #expect(refused == ["recovered": false, "position": newest.json], "\(why)")
            hub.broadcast(topic: "h:r", event: "msg", payload: ["live": true])
            try await waitFor(1, late, "h:r")
            #expect(broadcasts(late, "h:r").map(\.payload) == [["live": true]], "nothing old: \(why)")
            _ = try await late.leave("h:r")
        }
    }

    @Test("publishes racing a recovery: no gap, no duplicate at the seam")
    func racing() async throws {
        let (hub, socket) = makeSocket(size: 100_000, maxRecover: 100_000)
        let first = try ChannelTest(socket: socket)
        let epoch = try #require(try await first.join("h:race")["position"]?["epoch"]?.stringValue)
        let publisher = Task.detached {
            for i in 1...3000 {
                hub.broadcast(topic: "h:race", event: "msg", payload: ["i": .int(Int64(i))])
                if i % 50 == 0 { await Task.yield() }
            }
        }
        var clients: [ChannelTest] = []
        for _ in 0..<10 {
            try await Task.sleep(for: .milliseconds(2))
            let client = try ChannelTest(socket: socket)
            _ = try await client.join("h:race", ["recover": ["epoch": .string(epoch), "offset": 0]])
            clients.append(client)
        }
        await publisher.value
        for client in clients {
            try await waitFor(3000, client, "h:race")
            let offsets = broadcasts(client, "h:race").map { StreamPosition($0.ref.stringValue ?? "")?.offset ?? 0 }
            #expect(offsets == Array(1...3000), "every message once, in order")
        }
    }
}

@Suite("Stored messages")
struct StoredMessageTests {
    @Test("event names of any length and binary payloads come back as stored")
    func roundTrip() {
        for event in ["", "m", String(repeating: "é", count: 200), String(repeating: "e", count: 70_000)] {
            let json = StoredMessage(offset: 3, event: event, payload: .json(["a": [1, "b"]]), time: 7)
            #expect(json.event == event && json.payload == .json(["a": [1, "b"]]) && json.offset == 3 && json.time == 7)
            let binary = StoredMessage(offset: 4, event: event, payload: .binary(ByteBuffer(bytes: [0, 255, 1])), time: 8)
            #expect(binary.event == event && binary.payload == .binary(ByteBuffer(bytes: [0, 255, 1])))
        }
    }
}
