import NIOCore
import Testing

@testable import Switchboard

/// One topic's presence rules (`PresenceTopic`) without channels, locks or timers: diff merging,
/// the joiner snapshot, grace periods and the exact JSON of state and diffs.
@Suite("Presence topic state")
struct PresenceTopicTests {
    let a = SubscriberID(node: "n", local: 1)
    let b = SubscriberID(node: "n", local: 2)
    let c = SubscriberID(node: "n", local: 3)

    func meta(_ value: JSONValue) -> [UInt8] {
        PresenceTopic.encodeAppMeta(value.objectValue ?? [:])
    }

    func text(_ buffer: ByteBuffer?) -> String? { buffer.map { String(buffer: $0) } }

    @Test("state and diff are byte for byte the shapes of the protocol notes (§15.2, §15.3)")
    func exactJSON() {
        var topic = PresenceTopic(countOnly: false)
        _ = topic.track(key: "u1", ref: "F5ec_jYqAAASNAAB", owner: a, meta: meta(["device": "web"]))
        _ = topic.track(key: "u1", ref: "F5ec_o-SLwASNAAC", owner: b, meta: meta(["device": "phone"]))
        _ = topic.track(key: "u2", ref: "F5ec_uj6XgCaHwAD", owner: c, meta: meta(["device": "web"]))
        let v1 = topic.takeDiff()
        #expect(
            text(v1)
                == #"{"joins":{"u1":{"metas":[{"device":"web","phx_ref":"F5ec_jYqAAASNAAB"},{"device":"phone","phx_ref":"F5ec_o-SLwASNAAC"}]},"u2":{"metas":[{"device":"web","phx_ref":"F5ec_uj6XgCaHwAD"}]}},"leaves":{}}"#
        )
        let v2 = topic.joinerState()
        #expect(
            text(v2)
                == #"{"u1":{"metas":[{"device":"web","phx_ref":"F5ec_jYqAAASNAAB"},{"device":"phone","phx_ref":"F5ec_o-SLwASNAAC"}]},"u2":{"metas":[{"device":"web","phx_ref":"F5ec_uj6XgCaHwAD"}]}}"#
        )
        _ = topic.untrack(key: "u2", owner: c, grace: .zero, now: .now())
        let v3 = topic.takeDiff()
        #expect(text(v3) == #"{"joins":{},"leaves":{"u2":{"metas":[{"device":"web","phx_ref":"F5ec_uj6XgCaHwAD"}]}}}"#)
        let v4 = topic.takeDiff()
        #expect(v4 == nil)
        #expect(topic.count == PresenceCount(users: 1, connections: 2))
    }

    @Test("the empty state is {} and an empty meta is only its phx_ref")
    func empty() {
        var topic = PresenceTopic(countOnly: false)
        let v5 = topic.joinerState()
        #expect(text(v5) == "{}")
        _ = topic.track(key: "k", ref: "r1", owner: a, meta: meta([:]))
        #expect(text(topic.liveState()) == #"{"k":{"metas":[{"phx_ref":"r1"}]}}"#)
    }

    @Test("an update is one diff with the key in joins (new ref, phx_ref_prev) and in leaves (old ref)")
    func update() {
        var topic = PresenceTopic(countOnly: false)
        _ = topic.track(key: "u", ref: "r1", owner: a, meta: meta(["s": "away"]))
        _ = topic.takeDiff()
        let v6 = topic.update(key: "u", owner: a, ref: "r2", meta: meta(["s": "busy"]))
        #expect(v6)
        let v7 = topic.takeDiff()
        #expect(
            text(v7)
                == #"{"joins":{"u":{"metas":[{"s":"busy","phx_ref":"r2","phx_ref_prev":"r1"}]}},"leaves":{"u":{"metas":[{"s":"away","phx_ref":"r1"}]}}}"#
        )
        let v8 = topic.update(key: "u", owner: b, ref: "r3", meta: meta([:]))
        #expect(!v8)
        let v9 = topic.update(key: "other", owner: a, ref: "r3", meta: meta([:]))
        #expect(!v9)
    }

    @Test("an entry that joins and leaves within one diff is never announced; an unannounced update replaces its join")
    func merging() {
        var topic = PresenceTopic(countOnly: false)
        _ = topic.track(key: "x", ref: "r1", owner: a, meta: meta([:]))
        _ = topic.untrack(key: "x", owner: a, grace: .zero, now: .now())
        let v10 = topic.takeDiff()
        #expect(v10 == nil)
        _ = topic.track(key: "y", ref: "r2", owner: b, meta: meta(["v": 1]))
        _ = topic.update(key: "y", owner: b, ref: "r3", meta: meta(["v": 2]))
        let v11 = topic.takeDiff()
        #expect(text(v11) == #"{"joins":{"y":{"metas":[{"v":2,"phx_ref":"r3","phx_ref_prev":"r2"}]}},"leaves":{}}"#)
    }

    @Test("the joiner snapshot leaves out pending joins, never holds a pending leave, and is reused until it changes")
    func snapshot() {
        var topic = PresenceTopic(countOnly: false)
        _ = topic.track(key: "old", ref: "r1", owner: a, meta: meta([:]))
        _ = topic.track(key: "gone", ref: "r2", owner: b, meta: meta([:]))
        _ = topic.takeDiff()
        let first = topic.joinerState()
        #expect(text(first) == #"{"old":{"metas":[{"phx_ref":"r1"}]},"gone":{"metas":[{"phx_ref":"r2"}]}}"#)
        // A join: the snapshot (the same encoding) stays; the pending diff brings the join.
        _ = topic.track(key: "new", ref: "r3", owner: c, meta: meta([:]))
        let second = topic.joinerState()
        #expect(second == first)
        #expect(second.readerIndex == first.readerIndex && second.storageCapacity == first.storageCapacity)
        // A leave: the snapshot no longer holds the member the pending diff removes.
        _ = topic.untrack(key: "gone", owner: b, grace: .zero, now: .now())
        let v12 = topic.joinerState()
        #expect(text(v12) == #"{"old":{"metas":[{"phx_ref":"r1"}]}}"#)
        #expect(text(topic.liveState()) == #"{"old":{"metas":[{"phx_ref":"r1"}]},"new":{"metas":[{"phx_ref":"r3"}]}}"#)
        _ = topic.takeDiff()
        let v13 = topic.joinerState()
        #expect(text(v13) == #"{"old":{"metas":[{"phx_ref":"r1"}]},"new":{"metas":[{"phx_ref":"r3"}]}}"#)
    }

    @Test("per user: joined with the first meta, left with the last; occupied and vacated around them")
    func changes() {
        var topic = PresenceTopic(countOnly: false)
        let v14 = topic.track(key: "u", ref: "r1", owner: a, meta: meta([:]))
        #expect(v14 == [.occupied, .joined("u")])
        let v15 = topic.track(key: "u", ref: "r2", owner: b, meta: meta([:]))
        #expect(v15 == [])
        let v16 = topic.untrack(key: "u", owner: a, grace: .zero, now: .now())
        #expect(v16.changes == [])
        let v17 = topic.untrack(key: "u", owner: b, grace: .zero, now: .now())
        #expect(v17.changes == [.left("u"), .vacated])
        let v18 = topic.untrack(key: "u", owner: b, grace: .zero, now: .now())
        #expect(v18.changes == [])
        #expect(topic.isEmpty)
    }

    @Test("grace: the last meta lingers; a track under the key within it replaces it in one diff; otherwise it leaves when it ends")
    func grace() {
        var topic = PresenceTopic(countOnly: false)
        let now = NIODeadline.now()
        _ = topic.track(key: "u", ref: "r1", owner: a, meta: meta([:]))
        _ = topic.takeDiff()
        let result = topic.untrack(key: "u", owner: a, grace: .seconds(5), now: now)
        #expect(result.changes == [] && result.lingering)
        let v19 = topic.takeDiff()
        #expect(v19 == nil)
        #expect(topic.count == PresenceCount(users: 1, connections: 1))
        // The page reloads: a new channel tracks the key.
        let v20 = topic.track(key: "u", ref: "r2", owner: b, meta: meta([:]))
        #expect(v20 == [])
        let v21 = topic.takeDiff()
        #expect(text(v21) == #"{"joins":{"u":{"metas":[{"phx_ref":"r2"}]}},"leaves":{"u":{"metas":[{"phx_ref":"r1"}]}}}"#)
        #expect(topic.count == PresenceCount(users: 1, connections: 1))
        // It closes for good: the key leaves once the grace period is over.
        _ = topic.untrack(key: "u", owner: b, grace: .seconds(5), now: now)
        let early = topic.expire(now: now + .seconds(4))
        #expect(early.changes == [] && early.next == now + .seconds(5))
        let late = topic.expire(now: now + .seconds(5))
        #expect(late.changes == [.left("u"), .vacated] && late.next == nil)
        let v22 = topic.takeDiff()
        #expect(text(v22) == #"{"joins":{},"leaves":{"u":{"metas":[{"phx_ref":"r2"}]}}}"#)
    }

    @Test("grace applies to a user's last meta only: another tab's end is an immediate leave of that meta")
    func graceOtherTabs() {
        var topic = PresenceTopic(countOnly: false)
        _ = topic.track(key: "u", ref: "r1", owner: a, meta: meta([:]))
        _ = topic.track(key: "u", ref: "r2", owner: b, meta: meta([:]))
        _ = topic.takeDiff()
        let v23 = topic.untrack(key: "u", owner: a, grace: .seconds(5), now: .now())
        #expect(!v23.lingering)
        let v24 = topic.takeDiff()
        #expect(text(v24) == #"{"joins":{},"leaves":{"u":{"metas":[{"phx_ref":"r1"}]}}}"#)
    }

    @Test("keys are any strings and are escaped; metas keep unicode; app phx_ref fields are replaced by the server's")
    func keys() throws {
        var topic = PresenceTopic(countOnly: false)
        let long = String(repeating: "é", count: 512)
        _ = topic.track(key: "__proto__", ref: "r1", owner: a, meta: meta(["phx_ref": "fake", "phx_ref_prev": "x"]))
        _ = topic.track(key: "quote\"\\\n", ref: "r2", owner: b, meta: meta(["name": "Zoë 🚀"]))
        _ = topic.track(key: long, ref: "r3", owner: c, meta: meta([:]))
        let state = try JSONParser.parse(topic.liveState())
        #expect(state["__proto__"] == ["metas": [["phx_ref": "r1"]]])
        #expect(state["quote\"\\\n"] == ["metas": [["name": "Zoë 🚀", "phx_ref": "r2"]]])
        #expect(state[long] == ["metas": [["phx_ref": "r3"]]])
    }

    @Test("count-only topics keep counts but no diff")
    func countOnly() {
        var topic = PresenceTopic(countOnly: true)
        _ = topic.track(key: "u", ref: "r1", owner: a, meta: meta([:]))
        _ = topic.track(key: "v", ref: "r2", owner: b, meta: meta([:]))
        let v25 = topic.takeDiff()
        #expect(v25 == nil)
        #expect(topic.count == PresenceCount(users: 2, connections: 2))
    }

    @Test("phx_refs are 15 base64url characters and unique")
    func refs() {
        let generator = PresenceRefGenerator()
        let refs = (0..<10_000).map { _ in generator.next() }
        #expect(Set(refs).count == refs.count)
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        #expect(refs.allSatisfy { $0.count == 15 && $0.allSatisfy(alphabet.contains) })
        #expect(PresenceRefGenerator.base64url([0xFB, 0xFF]) == "-_8")
        #expect(PresenceRefGenerator.base64url(Array("Man".utf8)) == "TWFu")
    }
}
