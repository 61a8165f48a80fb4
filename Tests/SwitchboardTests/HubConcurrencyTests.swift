import Dispatch
import Foundation
import NIOCore
import Synchronization
import Testing

@testable import Switchboard

/// A broker whose first `topicVacated` call pauses (up to one second, so a hub that notifies under
/// its lock is not deadlocked) until the test releases it,
/// to reproduce a thread being preempted between the hub's decision "the topic is now empty" and
/// the broker hearing about it.
final class GatedBroker: Broker {
    let entered = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    private let gate = Atomic<Bool>(true)
    private let log = Mutex<[RecordingBroker.Call]>([])

    var calls: [RecordingBroker.Call] { log.withLock { $0 } }

    func attach(_ deliver: @escaping @Sendable (Broadcast) -> Void) {}
    func publish(_ broadcast: Broadcast) {}

    func topicOccupied(_ topic: String) { log.withLock { $0.append(.occupied(topic)) } }

    func topicVacated(_ topic: String) {
        if gate.exchange(false, ordering: .relaxed) {
            entered.signal()
            _ = release.wait(timeout: .now() + 1)
        }
        log.withLock { $0.append(.vacated(topic)) }
    }
}

@Suite("Hub concurrency")
struct HubConcurrencyTests {
    /// A cluster broker subscribes upstream on `topicOccupied` and unsubscribes on `topicVacated`,
    /// so the order in which it hears them must match the order of the transitions: after the
    /// last call it must believe what the hub's registry says.
    @Test func brokerNotificationsFollowTheOrderOfTransitions() {
        let broker = GatedBroker()
        let hub = Hub(nodeID: "n", broker: broker)
        let loop = InlineEventLoop()
        let s1 = TestSubscriber("s1", hub: hub, loop: loop)
        let s2 = TestSubscriber("s2", hub: hub, loop: loop)
        hub.subscribe(s1, to: "t")  // 0→1

        // Thread X: 1→0. Its topicVacated call is held at the broker's door.
        let unsubscribed = DispatchSemaphore(value: 0)
        // Dedicated threads: a busy Dispatch pool could delay Y until after X finished and hide the race.
        Thread {
            hub.unsubscribe(s1, from: "t")
            unsubscribed.signal()
        }.start()
        #expect(broker.entered.wait(timeout: .now() + 5) == .success)

        // Thread Y: 0→1 again while X has not yet told the broker.
        let subscribed = DispatchSemaphore(value: 0)
        Thread {
            hub.subscribe(s2, to: "t")
            subscribed.signal()
        }.start()
        // Without ordering, Y finishes at once. A hub that serialises notifications with transitions
        // keeps Y waiting until the gate's one-second timeout lets X go on.
        var subscribeDone = subscribed.wait(timeout: .now() + 2) == .success
        broker.release.signal()
        #expect(unsubscribed.wait(timeout: .now() + 5) == .success)
        if !subscribeDone { subscribeDone = subscribed.wait(timeout: .now() + 5) == .success }
        #expect(subscribeDone)

        #expect(hub.localSubscriberCount(topic: "t") == 1)
        // t has a subscriber, so the broker's last word on t must be "occupied".
        #expect(broker.calls.last == .occupied("t"), "broker heard \(broker.calls) but the topic has 1 subscriber")
    }

    @Test func concurrentSubscribeAndUnsubscribeKeepCountsExact() {
        let hub = Hub(nodeID: "n", broker: MemoryBroker(), shardCount: 4)
        let loops = (0..<4).map { InlineEventLoop("L\($0)") }
        let topics = (0..<5).map { "topic:\($0)" }
        let subscribers = (0..<200).map { i in TestSubscriber("s\(i)", hub: hub, loop: loops[i % loops.count]) }

        DispatchQueue.concurrentPerform(iterations: subscribers.count) { i in
            for topic in topics { hub.subscribe(subscribers[i], to: topic) }
            if i % 2 == 0 {
                for topic in topics { hub.unsubscribe(subscribers[i], from: topic) }
            }
        }
        #expect(hub.localTopics() == Dictionary(uniqueKeysWithValues: topics.map { ($0, 100) }))

        hub.broadcast(topic: "topic:3", event: "e", payload: .emptyObject)
        #expect(subscribers.filter { $0.receiveCount == 1 }.count == 100)
        #expect(subscribers.enumerated().allSatisfy { i, s in s.receiveCount == (i % 2 == 0 ? 0 : 1) })
    }
}
