import NIOCore
import Switchboard
import SwitchboardTestSupport
import Synchronization
import Testing

/// What a conformance check needs from a broker under test, already attached to `hub` and running.
struct BrokerUnderTest: Sendable {
    let hub: Hub
    /// Returns once the broker is subscribed upstream to `topic` (at once for a single-node broker).
    let subscribedUpstream: @Sendable (String) async throws -> Void
    /// Returns once `count` more of this node's publishes have come back from upstream and been
    /// dealt with (at once for a single-node broker), so a duplicate would have shown by then.
    let settled: @Sendable (Int) async throws -> Void
    /// The occupied (`+topic`) and vacated (`-topic`) calls the broker received, in order.
    let brokerCalls: @Sendable () -> [String]
}

/// Records the broker calls the hub makes, and forwards them to the broker under test.
final class RecordingBroker: Broker {
    let inner: any Broker
    let calls = Mutex<[String]>([])

    init(_ inner: any Broker) { self.inner = inner }
    func attach(_ deliver: @escaping @Sendable (Broadcast) -> Void) { inner.attach(deliver) }
    func publish(_ broadcast: Broadcast) { inner.publish(broadcast) }
    func topicOccupied(_ topic: String) {
        calls.withLock { $0.append("+\(topic)") }
        inner.topicOccupied(topic)
    }
    func topicVacated(_ topic: String) {
        calls.withLock { $0.append("-\(topic)") }
        inner.topicVacated(topic)
    }
}

/// The contract every `Broker` keeps, checked through a `Hub` (the way brokers are used).
enum BrokerConformance: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case deliversEachBroadcastOnce
    case keepsPublishOrder
    case honoursExcluding
    case carriesJSONAndBinaryPayloads
    case occupiedAndVacatedAlternate
    case disconnectsBySocketID
    case publishDoesNotWait

    var testDescription: String { rawValue }

    func run(_ node: BrokerUnderTest) async throws {
        let hub = node.hub
        let topic = "conformance:\(rawValue):\(UInt64.random(in: 0...UInt64.max))"
        switch self {
        case .deliversEachBroadcastOnce:
            let a = subscribe(hub, topic)
            let b = subscribe(hub, topic)
            try await node.subscribedUpstream(topic)
            hub.broadcast(topic: topic, event: "once", payload: ["n": 1])
            try await node.settled(1)
            #expect(await eventually { a.count == 1 && b.count == 1 })
            #expect(a.events == ["once"] && b.events == ["once"])
            #expect(hub.localSubscriberCount(topic: topic) == 2)

        case .keepsPublishOrder:
            let a = subscribe(hub, topic)
            try await node.subscribedUpstream(topic)
            for i in 0..<200 { hub.broadcast(topic: topic, event: "e\(i)", payload: ["i": .int(Int64(i))]) }
            try await node.settled(200)
            #expect(await eventually { a.count == 200 })
            #expect(a.events == (0..<200).map { "e\($0)" })

        case .honoursExcluding:
            let sender = subscribe(hub, topic)
            let other = subscribe(hub, topic)
            try await node.subscribedUpstream(topic)
            hub.publish(Broadcast(topic: topic, event: "from", payload: .json(.emptyObject), excluding: sender.id))
            hub.broadcast(topic: topic, event: "all", payload: .emptyObject)
            try await node.settled(2)
            #expect(await eventually { other.count == 2 && sender.count == 1 })
            #expect(other.events == ["from", "all"])
            #expect(sender.events == ["all"])
            #expect(other.broadcasts.first?.excluding == sender.id)

        case .carriesJSONAndBinaryPayloads:
            let a = subscribe(hub, topic)
            try await node.subscribedUpstream(topic)
            let json: JSONValue = ["text": "héllo \"quoted\"", "n": -3, "f": 2.5, "list": [true, false, nil], "nested": ["k": []]]
            let binary = ByteBuffer(bytes: [0, 1, 2, 253, 254, 255])
            hub.broadcast(topic: topic, event: "json", payload: json)
            hub.broadcast(topic: topic, event: "binary", payload: .binary(binary))
            try await node.settled(2)
            #expect(await eventually { a.count == 2 })
            #expect(a.broadcasts.map(\.payload) == [.json(json), .binary(binary)])
            #expect(a.broadcasts.allSatisfy { $0.topic == topic })

        case .occupiedAndVacatedAlternate:
            // Many subscribers joining and leaving concurrently: the broker hears of the first and
            // the last only, strictly alternating, and delivery still works afterwards.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        for _ in 0..<100 {
                            let s = RecordingSubscriber(hub: hub)
                            hub.subscribe(s, to: topic)
                            hub.unsubscribe(s, from: topic)
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(hub.localSubscriberCount(topic: topic) == 0)
            let calls = node.brokerCalls().filter { $0.dropFirst() == topic }
            #expect(calls.count >= 2 && calls.count % 2 == 0)
            #expect(calls.enumerated().allSatisfy { $0.element.first == ($0.offset % 2 == 0 ? "+" : "-") })
            let last = subscribe(hub, topic)
            try await node.subscribedUpstream(topic)
            hub.broadcast(topic: topic, event: "after", payload: .emptyObject)
            try await node.settled(1)
            #expect(await eventually { last.count == 1 })
            #expect(last.events == ["after"])

        case .disconnectsBySocketID:
            let socketTopic = "user_socket:\(topic)"
            let listener = subscribe(hub, socketTopic)
            try await node.subscribedUpstream(socketTopic)
            hub.disconnect(socketID: socketTopic)
            try await node.settled(1)
            #expect(await eventually { listener.count == 1 })
            #expect(listener.events == [PhoenixEvent.disconnect])

        case .publishDoesNotWait:
            let a = subscribe(hub, topic)
            try await node.subscribedUpstream(topic)
            let started = ContinuousClock.now
            for i in 0..<2000 { hub.broadcast(topic: topic, event: "x", payload: ["i": .int(Int64(i))]) }
            // A generous bound for a debug build on a loaded machine; a blocking publish would also
            // show in the multi-node test that publishes while Redis is frozen.
            #expect(ContinuousClock.now - started < .seconds(5))
            try await node.settled(2000)
            #expect(await eventually { a.count == 2000 })
        }
    }

    func subscribe(_ hub: Hub, _ topic: String) -> RecordingSubscriber {
        let subscriber = RecordingSubscriber(hub: hub)
        hub.subscribe(subscriber, to: topic)
        return subscriber
    }
}
