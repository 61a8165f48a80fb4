import NIOCore
import SwitchboardTestSupport
import Testing

@testable import Switchboard

/// A room that tracks each joiner under `user` (payload `meta` as its meta), or only watches with
/// `{"observe": true}`. Events: `update` `{"meta"}`, `untrack`, `track_again`, `track_keys`
/// `{"count", "spacing_ms"}`, `crash`.
private struct PresenceRoom: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        if payload["observe"] == true {
            socket.pushPresenceState()
            return .ok()
        }
        do {
            try socket.track(key: payload["user"]?.stringValue ?? "anonymous", meta: payload["meta"] ?? .emptyObject)
        } catch {
            return .refuse(error.description)
        }
        socket.assigns["user"] = payload["user"]?.stringValue ?? "anonymous"
        return .ok()
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        let user: String = socket.assigns["user"] ?? "anonymous"
        do {
            switch event {
            case "update": try socket.updatePresence(key: payload["key"]?.stringValue ?? user, meta: payload["meta"] ?? .null)
            case "untrack": return .ok(["untracked": .bool(socket.untrack(key: user))])
            case "track_again": try socket.track(key: user)
            case "track_keys":
                // More keys for this channel, written `spacing_ms` apart (a burst of joins).
                for n in 0..<(payload["count"]?.intValue ?? 0) {
                    try socket.track(key: "\(user)-\(n)")
                    try await Task.sleep(for: .milliseconds(payload["spacing_ms"]?.intValue ?? 0))
                }
            case "crash":
                struct Crash: Error {}
                throw Crash()
            default: return .error(reason: "unknown event")
            }
        } catch let error as PresenceError {
            return .error(reason: error.description)
        }
        return .ok()
    }
}

extension JSONValue {
    fileprivate subscript(index: Int) -> JSONValue? {
        guard let elements = arrayValue, elements.indices.contains(index) else { return nil }
        return elements[index]
    }
}

@Suite("Presence through channels (library)")
struct PresenceTests {
    func makeSocket(_ hub: Hub) -> PhoenixSocket {
        var socket = PhoenixSocket(hub: hub)
        socket.channel("room:*", PresenceRoom())
        return socket
    }

    func hub(countOnly: Bool = false, grace: Duration = .zero, diffInterval: Duration = .milliseconds(50)) -> Hub {
        var configuration = Presence.Configuration()
        configuration.diffInterval = diffInterval
        configuration.countInterval = .milliseconds(200)
        configuration.policy = { _ in Presence.TopicPolicy(countOnly: countOnly, grace: grace) }
        return Hub(nodeID: "n", presence: configuration)
    }

    /// Every `presence_diff` payload the client got on `topic`, in order.
    func diffs(_ client: ChannelTest, _ topic: String) -> [JSONValue] {
        client.frames.compactMap { frame in
            guard let f = frame.arrayValue, f.count == 5, f[2] == .string(topic), f[3] == "presence_diff" else { return nil }
            return f[4]
        }
    }

    /// Applies state and diffs as phoenix.js does (joins before leaves, metas by phx_ref): key → refs.
    func replay(_ client: ChannelTest, _ topic: String) -> [String: Set<String>] {
        var state: [String: Set<String>] = [:]
        func refs(_ entry: JSONValue) -> [String] { entry["metas"]?.arrayValue?.compactMap { $0["phx_ref"]?.stringValue } ?? [] }
        for frame in client.frames {
            guard let f = frame.arrayValue, f.count == 5, f[2] == .string(topic) else { continue }
            if f[3] == "presence_state", case .object(let members) = f[4] {
                state = members.mapValues { Set(refs($0)) }
            } else if f[3] == "presence_diff" {
                for (key, entry) in f[4]["joins"]?.objectValue ?? [:] { state[key, default: []].formUnion(refs(entry)) }
                for (key, entry) in f[4]["leaves"]?.objectValue ?? [:] {
                    state[key]?.subtract(refs(entry))
                    if state[key]?.isEmpty == true { state[key] = nil }
                }
            }
        }
        return state
    }

    func eventually(_ timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test("the joiner gets its join reply, then presence_state with its join_ref; others get presence_diff with join_ref null")
    func stateThenDiffs() async throws {
        let hub = hub()
        let socket = makeSocket(hub)
        let ana = try ChannelTest(socket: socket)
        try await ana.join("room:1", ["user": "ana", "meta": ["device": "web"]])
        let first = ana.frames.compactMap(\.arrayValue)
        #expect(first.first?[3] == "phx_reply")
        let state = try await ana.expectPush("room:1", "presence_state")
        let stateFrame = try #require(first.first { $0[3] == "presence_state" })
        #expect(stateFrame[0] == first.first?[0] && stateFrame[0] != .null)  // its join_ref
        #expect(stateFrame[1] == .null)
        // Ana's own join is in the snapshot or in the diff that follows it, never in neither.
        #expect(try await eventually { replay(ana, "room:1")["ana"]?.count == 1 })
        #expect(state.objectValue != nil)

        let bob = try ChannelTest(socket: socket)
        try await bob.join("room:1", ["user": "bob", "meta": ["device": "phone"]])
        #expect(try await eventually { replay(ana, "room:1").keys.sorted() == ["ana", "bob"] })
        #expect(try await eventually { replay(bob, "room:1").keys.sorted() == ["ana", "bob"] })
        let diffFrame = try #require(ana.frames.compactMap(\.arrayValue).last { $0[3] == "presence_diff" })
        #expect(diffFrame[0] == .null && diffFrame[1] == .null)
        let bobJoins = diffs(ana, "room:1").compactMap { (diff: JSONValue) -> JSONValue? in diff["joins"]?["bob"]?["metas"]?[0] }
        let bobMeta = try #require(bobJoins.first)
        #expect(bobMeta["device"] == "phone")
        #expect(bobMeta["phx_ref"]?.stringValue?.count == 15)
        #expect(diffs(ana, "room:1").allSatisfy { $0["joins"]?.objectValue != nil && $0["leaves"]?.objectValue != nil })

        // Leave, then disconnect: each removes the entry, and everyone hears it.
        #expect(try await bob.leave("room:1") == "ok")
        #expect(try await eventually { replay(ana, "room:1").keys.sorted() == ["ana"] })
        #expect(hub.presence.count("room:1") == PresenceCount(users: 1, connections: 1))
        let carl = try ChannelTest(socket: socket)
        try await carl.join("room:1", ["user": "carl"])
        #expect(try await eventually { replay(ana, "room:1").keys.sorted() == ["ana", "carl"] })
        carl.session.connection.close()
        #expect(try await eventually { replay(ana, "room:1").keys.sorted() == ["ana"] })
        #expect(hub.presence.list("room:1").map(\.key) == ["ana"])
    }

    @Test("per user, not per tab: two channels under one key are one user with two metas; it leaves with the last")
    func multiTab() async throws {
        let hub = hub()
        let socket = makeSocket(hub)
        let watcher = try ChannelTest(socket: socket)
        try await watcher.join("room:t", ["observe": true])
        _ = try await watcher.expectPush("room:t", "presence_state")
        let events = hub.presence.events()
        let tab1 = try ChannelTest(socket: socket)
        let tab2 = try ChannelTest(socket: socket)
        try await tab1.join("room:t", ["user": "u"])
        try await tab2.join("room:t", ["user": "u"])
        #expect(try await eventually { replay(watcher, "room:t")["u"]?.count == 2 })
        #expect(hub.presence.count("room:t") == PresenceCount(users: 1, connections: 2))
        tab1.session.connection.close()
        #expect(try await eventually { replay(watcher, "room:t")["u"]?.count == 1 })
        tab2.session.connection.close()
        #expect(try await eventually { replay(watcher, "room:t")["u"] == nil })
        #expect(hub.presence.count("room:t") == .zero)
        var kinds: [PresenceEvent.Kind] = []
        for await event in events {
            #expect(event.topic == "room:t")
            kinds.append(event.kind)
            if event.kind == .topicVacated { break }
        }
        #expect(kinds == [.topicOccupied, .memberJoined, .memberLeft, .topicVacated])
    }

    @Test("an update is one diff: the key in joins with a new phx_ref and phx_ref_prev, and in leaves with the old")
    func update() async throws {
        let hub = hub()
        let socket = makeSocket(hub)
        let ana = try ChannelTest(socket: socket)
        try await ana.join("room:u", ["user": "ana", "meta": ["status": "away"]])
        #expect(try await eventually { replay(ana, "room:u")["ana"]?.count == 1 })
        let before = diffs(ana, "room:u").count
        let oldRef = try #require(replay(ana, "room:u")["ana"]?.first)
        let ref = try await ana.push("room:u", "update", ["meta": ["status": "busy"]])
        #expect(try await ana.expectReply(ref).status == "ok")
        #expect(try await eventually { diffs(ana, "room:u").count == before + 1 })
        let diff = try #require(diffs(ana, "room:u").last)
        let joined = try #require(diff["joins"]?["ana"]?["metas"]?[0])
        #expect(joined["status"] == "busy" && joined["phx_ref_prev"] == .string(oldRef) && joined["phx_ref"] != .string(oldRef))
        #expect(diff["leaves"]?["ana"]?["metas"]?[0] == ["status": "away", "phx_ref": .string(oldRef)])
        #expect(replay(ana, "room:u")["ana"]?.count == 1)
    }

    @Test("bad calls get clear errors and harm nothing: track twice, update untracked, meta not an object, meta too large")
    func badCalls() async throws {
        let hub = hub()
        let socket = makeSocket(hub)
        let ana = try ChannelTest(socket: socket)
        try await ana.join("room:e", ["user": "ana"])
        var ref = try await ana.push("room:e", "track_again")
        #expect(try await ana.expectReply(ref) == ("error", ["reason": "already tracked"]))
        ref = try await ana.push("room:e", "update", ["key": "nobody", "meta": [:]])
        #expect(try await ana.expectReply(ref) == ("error", ["reason": "not tracked"]))
        ref = try await ana.push("room:e", "update", ["meta": [1, 2]])
        #expect(try await ana.expectReply(ref) == ("error", ["reason": "meta must be an object"]))
        ref = try await ana.push("room:e", "update", ["meta": ["big": .string(String(repeating: "x", count: 5000))]])
        #expect(try await ana.expectReply(ref) == ("error", ["reason": "meta too large"]))
        // A meta just under the limit is fine.
        ref = try await ana.push("room:e", "update", ["meta": ["big": .string(String(repeating: "x", count: 4000))]])
        #expect(try await ana.expectReply(ref).status == "ok")
        let bob = try ChannelTest(socket: socket)
        await #expect(throws: ChannelTest.Failure.self) {
            try await bob.join("room:e", ["user": "bob", "meta": "not an object"])
        }
        #expect(hub.presence.count("room:e") == PresenceCount(users: 1, connections: 1))
        ref = try await ana.push("room:e", "untrack")
        #expect(try await ana.expectReply(ref) == ("ok", ["untracked": true]))
        ref = try await ana.push("room:e", "untrack")
        #expect(try await ana.expectReply(ref) == ("ok", ["untracked": false]))
        #expect(hub.presence.count("room:e") == .zero)
    }

    @Test("a crashed channel's presence goes with it")
    func crash() async throws {
        let hub = hub()
        let socket = makeSocket(hub)
        let ana = try ChannelTest(socket: socket)
        try await ana.join("room:c", ["user": "ana"])
        #expect(hub.presence.count("room:c").users == 1)
        try await ana.push("room:c", "crash")
        _ = try await ana.expectPush("room:c", "phx_error")
        #expect(try await eventually { hub.presence.count("room:c") == .zero })
    }

    @Test("300 joins within a second reach an observer in at most 60 presence_diff frames, and its replayed state is exact")
    func batching() async throws {
        let hub = hub()
        let socket = makeSocket(hub)
        let watcher = try ChannelTest(socket: socket)
        try await watcher.join("room:b", ["observe": true])
        _ = try await watcher.expectPush("room:b", "presence_state")
        let tracker = try ChannelTest(socket: socket)
        try await tracker.join("room:b", ["user": "first"])
        let start = ContinuousClock.now
        let ref = try await tracker.push("room:b", "track_keys", ["count": 299, "spacing_ms": 3])
        #expect(try await tracker.expectReply(ref, timeout: .seconds(10)).status == "ok")
        let elapsed = ContinuousClock.now - start
        #expect(try await eventually { replay(watcher, "room:b").count == 300 })
        let reached = ContinuousClock.now - start
        // The bound holds for any spread; this checks the joins were really written close together.
        #expect(elapsed < .seconds(3), "the 300 joins took \(elapsed)")
        #expect(reached - elapsed < .milliseconds(500))
        #expect(diffs(watcher, "room:b").count <= 60, "\(diffs(watcher, "room:b").count) diffs")
        #expect(hub.presence.count("room:b") == PresenceCount(users: 300, connections: 300))
    }

    @Test("count-only topics send presence_count to the joiner and then only when it changed, never state or diffs")
    func countOnly() async throws {
        let hub = hub(countOnly: true)
        let socket = makeSocket(hub)
        let watcher = try ChannelTest(socket: socket)
        try await watcher.join("room:n", ["observe": true])
        #expect(try await watcher.expectPush("room:n", "presence_count") == ["users": 0, "connections": 0])
        let a = try ChannelTest(socket: socket)
        let b = try ChannelTest(socket: socket)
        try await a.join("room:n", ["user": "a"])
        try await b.join("room:n", ["user": "a"])
        #expect(try await eventually { watcher.frames.last?[4] == ["users": 1, "connections": 2] })
        a.session.connection.close()
        b.session.connection.close()
        #expect(try await eventually { watcher.frames.last?[4] == ["users": 0, "connections": 0] })
        let counts = watcher.frames.filter { $0[3] == "presence_count" }
        #expect(counts.count <= 4)
        #expect(zip(counts, counts.dropFirst()).allSatisfy { $0[4] != $1[4] })  // only when it changed
        #expect(!watcher.frames.contains { $0[3] == "presence_state" || $0[3] == "presence_diff" })
    }

    @Test("grace: a reload within the grace period is not a leave; a real leave waits for the period")
    func grace() async throws {
        let hub = hub(grace: .milliseconds(400))
        let socket = makeSocket(hub)
        let watcher = try ChannelTest(socket: socket)
        try await watcher.join("room:g", ["observe": true])
        let events = hub.presence.events()
        let tab = try ChannelTest(socket: socket)
        try await tab.join("room:g", ["user": "u"])
        #expect(try await eventually { replay(watcher, "room:g")["u"]?.count == 1 })
        tab.session.connection.close()
        let reloaded = try ChannelTest(socket: socket)
        try await Task.sleep(for: .milliseconds(100))
        try await reloaded.join("room:g", ["user": "u"])
        #expect(try await eventually { replay(watcher, "room:g")["u"]?.count == 1 && hub.presence.count("room:g").connections == 1 })
        // Never absent in between.
        #expect(!diffs(watcher, "room:g").contains { $0["leaves"]?["u"] != nil && $0["joins"]?["u"] == nil })
        let closed = ContinuousClock.now
        reloaded.session.connection.close()
        #expect(try await eventually { replay(watcher, "room:g")["u"] == nil })
        #expect(ContinuousClock.now - closed >= .milliseconds(350))
        var kinds: [PresenceEvent.Kind] = []
        for await event in events {
            kinds.append(event.kind)
            if event.kind == .topicVacated { break }
        }
        #expect(kinds == [.topicOccupied, .memberJoined, .memberLeft, .topicVacated])
    }

    @Test("a rejoin gets a fresh presence_state with the new join_ref")
    func rejoin() async throws {
        let hub = hub()
        let socket = makeSocket(hub)
        let ana = try ChannelTest(socket: socket)
        try await ana.join("room:r", ["user": "ana"])
        _ = try await ana.expectPush("room:r", "presence_state")
        try await ana.join("room:r", ["user": "ana"])
        _ = try await ana.expectPush("room:r", "presence_state")
        let states = ana.frames.filter { $0[3] == "presence_state" }
        #expect(states.count == 2 && states[0][0] != states[1][0])
        #expect(try await eventually { hub.presence.count("room:r") == PresenceCount(users: 1, connections: 1) })
    }
}
