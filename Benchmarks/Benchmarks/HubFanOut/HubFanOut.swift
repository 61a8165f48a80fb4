import Benchmark
import NIOCore
import NIOEmbedded
import Switchboard

/// A subscriber that does what a connection does with a broadcast frame, minus the socket:
/// keeps a reference to the shared frame and counts deliveries.
final class CountingSubscriber: Subscriber, @unchecked Sendable {
    // @unchecked: only touched on the benchmark's single embedded event loop.
    let id: SubscriberID
    let eventLoop: any EventLoop
    let frameFormat: FrameFormat? = .phoenixV2WebSocket
    let connection: Connection
    var lastFrame: ByteBuffer?
    var delivered = 0

    init(loop: any EventLoop) {
        self.id = SubscriberID.next(node: "bench")
        self.eventLoop = loop
        self.connection = Connection(socketID: nil, assigns: Assigns(), transport: "bench") { _ in }
    }

    func receive(_ broadcast: Broadcast, frame: ByteBuffer?) {
        lastFrame = frame
        delivered += 1
    }

    func flushBatch() {}
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.mallocCountTotal, .wallClock, .throughput],
        maxDuration: .seconds(3),
        maxIterations: 2_000
    )
    for subscriberCount in [1, 100, 10_000] {
        let loop = EmbeddedEventLoop()
        let hub = Hub(nodeID: "bench")
        let subscribers = (0..<subscriberCount).map { _ in CountingSubscriber(loop: loop) }
        for subscriber in subscribers { hub.subscribe(subscriber, to: "room:bench") }
        let payload: JSONValue = ["user": "ann", "body": "a message of about a hundred bytes, like a chat line or a price tick"]
        Benchmark("broadcast to \(subscriberCount) subscribers (one encode, one loop hop)") { benchmark in
            for _ in benchmark.scaledIterations {
                hub.broadcast(topic: "room:bench", event: "new_msg", payload: payload)
                loop.run()
            }
            blackHole(subscribers[0].delivered)
        }
    }
}
