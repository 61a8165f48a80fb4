import Foundation
import Synchronization
import Testing

@testable import Switchboard

/// Runs `body` on a thread with a small stack and waits for it (a call chain that grows with
/// every publish overflows such a stack long before 100 000 publishes).
func onSmallStack(_ bytes: Int = 256 * 1024, _ body: @escaping @Sendable () -> Void) {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        body()
        done.signal()
    }
    thread.stackSize = bytes
    thread.start()
    done.wait()
}

@Suite("Broker delivery closure")
struct BrokerSinkTests {
    /// The memory broker once kept the hub's delivery closure bare in a `Mutex`: every publish
    /// wrapped it in two more reabstraction thunks, so the 100 000th publish ran 200 000 frames
    /// deep (660 µs per publish after 20 000 in the server, and a stack overflow later).
    @Test func publishCostDoesNotGrowWithThePublishCount() {
        let hub = Hub(nodeID: "n", broker: MemoryBroker())
        let loop = InlineEventLoop("A")
        let subscriber = TestSubscriber("s", hub: hub, loop: loop)
        hub.subscribe(subscriber, to: "t")
        onSmallStack {
            for index in 0..<100_000 {
                hub.publish(Broadcast(topic: index == 99_999 ? "t" : "elsewhere", event: "e", payload: .json(.emptyObject)))
            }
        }
        #expect(subscriber.receiveCount == 1)
    }
}
