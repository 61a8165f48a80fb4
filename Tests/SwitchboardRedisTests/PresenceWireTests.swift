import NIOCore
import Switchboard
import Testing

@testable import SwitchboardRedis

@Suite("Presence messages between nodes")
struct PresenceWireTests {
    @Test("every message reads back as written; metas keep their exact text, keys and topics any characters")
    func roundTrip() throws {
        let meta = Array(#"{"name":"Zoë 🚀","note":"a b\nc","phx_ref":"r1"}"#.utf8)
        let updates = [
            PresenceUpdate(
                node: "n1",
                topic: "room:a b",
                operations: [
                    .join(key: "__proto__", ref: "r1", owner: 7, meta: meta), .leave(key: "quote\" \\ key", ref: "r0"),
                ]
            ),
            PresenceUpdate(node: "n1", topic: "other", operations: [.join(key: "", ref: "r2", owner: 8, meta: Array("{}".utf8))]),
        ]
        let messages: [PresenceWire] = [
            .delta(node: "n1", seq: 42, updates: updates),
            .heartbeat(node: "n1", seq: 42),
            .sync(node: "n1", target: "*"),
            .state(node: "n1", seq: 41, part: 2, last: true, updates: updates),
            .state(node: "n1", seq: 0, part: 0, last: true, updates: []),
            .bye(node: "n1", seq: 42),
        ]
        for message in messages {
            #expect(try PresenceWire(decoding: message.encoded()) == message)
        }
        let text = String(buffer: PresenceWire.delta(node: "n1", seq: 42, updates: updates).encoded())
        #expect(text.contains(#"{"name":"Zoë 🚀","note":"a b\nc","phx_ref":"r1"}"#))
    }

    @Test("malformed messages are refused, not guessed at")
    func malformed() {
        for text in [
            "", "SBP2 hb n 1", "SBP1 hb n x", "SBP1 delta n 1\nJ \"t\" \"k\" r 1 notjson", "SBP1 delta n 1\nX \"t\" \"k\" r", "SBP1 state n 1 0",
            "SBP1 bye n x",
        ] {
            #expect(throws: (any Error).self) { try PresenceWire(decoding: ByteBuffer(string: text)) }
        }
    }
}
