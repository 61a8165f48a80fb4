import NIOCore
import Switchboard
import Testing

@testable import SwitchboardServer

@Suite("Webhook bodies and signatures")
struct WebhookTests {
    @Test("the body lists the events in order, key null for topic events; any topic and key text is escaped")
    func body() {
        let events = [
            WebhookEvent(id: "n1-1", event: PresenceEvent(kind: .topicOccupied, topic: "lobby:a", key: nil, time: 1_700_000_000_000)),
            WebhookEvent(id: "n1-2", event: PresenceEvent(kind: .memberJoined, topic: "lobby:a", key: "zoë \"z\"", time: 1_700_000_000_001)),
        ]
        let text = String(buffer: WebhookEvent.body(of: events))
        #expect(
            text
                == #"{"events":[{"id":"n1-1","type":"topic.occupied","topic":"lobby:a","key":null,"time":1700000000000},"#
                + #"{"id":"n1-2","type":"member.joined","topic":"lobby:a","key":"zoë \"z\"","time":1700000000001}]}"#
        )
        #expect((try? JSONParser.parse(text)) != nil)
    }

    @Test("the signature is the hex HMAC-SHA256 of the body (RFC 4231, test case 2)")
    func signature() {
        let signature = WebhookEvent.signature(of: ByteBuffer(string: "what do ya want for nothing?"), secret: "Jefe")
        #expect(signature == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}
