import Foundation
import NIOCore
import Switchboard
import SwitchboardTestSupport
import Testing

@testable import SwitchboardRedis

@Suite("Redis envelope")
struct RedisEnvelopeTests {
    @Test("JSON and binary broadcasts, with and without excluding, survive the round trip")
    func roundTrip() throws {
        let cases = [
            Broadcast(topic: "room:1", event: "new_msg", payload: .json(["body": "hi", "n": 3, "list": [true, nil, 1.5]])),
            Broadcast(
                topic: "room:1",
                event: "e",
                payload: .binary(ByteBuffer(bytes: [0, 1, 2, 255])),
                excluding: SubscriberID(node: "node-a", local: 42)
            ),
            Broadcast(topic: "t", event: "", payload: .json(.emptyObject), excluding: SubscriberID(node: "", local: .max)),
        ]
        for broadcast in cases {
            let bytes = try RedisEnvelope(origin: "node-a", broadcast: broadcast).encoded()
            #expect(RedisEnvelope.origin(of: bytes) == "node-a")
            let decoded = try RedisEnvelope(decoding: bytes, topic: broadcast.topic)
            #expect(decoded.origin == "node-a")
            #expect(decoded.broadcast.topic == broadcast.topic)
            #expect(decoded.broadcast.event == broadcast.event)
            #expect(decoded.broadcast.payload == broadcast.payload)
            #expect(decoded.broadcast.excluding == broadcast.excluding)
        }
    }

    @Test("every truncation and a wrong version fail cleanly")
    func invalid() throws {
        let broadcast = Broadcast(topic: "t", event: "event", payload: .json(["a": 1]), excluding: SubscriberID(node: "n", local: 1))
        let bytes = try RedisEnvelope(origin: "origin", broadcast: broadcast).encoded()
        // Cut anywhere before the payload: truncated. (A cut JSON payload is invalid JSON.)
        for length in 0..<bytes.readableBytes {
            #expect(throws: RedisEnvelopeError.self, "cut at \(length)") {
                _ = try RedisEnvelope(decoding: bytes.getSlice(at: bytes.readerIndex, length: length)!, topic: "t")
            }
        }
        var wrongVersion = bytes
        wrongVersion.setInteger(UInt8(9), at: wrongVersion.readerIndex)
        #expect(throws: RedisEnvelopeError.self) { _ = try RedisEnvelope(decoding: wrongVersion, topic: "t") }
        #expect(RedisEnvelope.origin(of: wrongVersion) == nil)
        #expect(throws: RedisEnvelopeError.self) {
            _ = try RedisEnvelope(origin: String(repeating: "x", count: 256), broadcast: broadcast).encoded()
        }
    }
}

@Suite("Redis broker delivery closure")
struct RedisBrokerSinkTests {
    /// The broker once kept the hub's delivery closure bare in a `Mutex`: every publish (and every
    /// message from Redis) wrapped it in two more reabstraction thunks, so each call got slower and
    /// deeper. 100 000 publishes on a 256 KiB stack overflowed it then; now they are flat.
    @Test func publishCostDoesNotGrowWithThePublishCount() {
        let broker = RedisBroker(nodeID: "n")
        let hub = Hub(nodeID: "n", broker: broker)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            for _ in 0..<100_000 {
                hub.publish(Broadcast(topic: "t", event: "e", payload: .json(.emptyObject)))
            }
            done.signal()
        }
        thread.stackSize = 256 * 1024
        thread.start()
        done.wait()
        // Never connected: every publish was delivered locally (no subscribers) and dropped for Redis.
        #expect(broker.statistics.dropped == 100_000)
    }
}
