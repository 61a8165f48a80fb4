import Logging
import NIOCore
import NIOPosix
import Switchboard
import SwitchboardRESP
import SwitchboardRedis
import SwitchboardTestSupport
import Synchronization

/// A hub subscriber that records what it receives.
final class RecordingSubscriber: Subscriber {
    let id: SubscriberID
    let eventLoop: any EventLoop
    var frameFormat: FrameFormat? { nil }
    let connection = Connection(socketID: nil, assigns: Assigns(), transport: "test", close: { _ in })
    private let received = Mutex<[Broadcast]>([])

    init(hub: Hub) {
        id = SubscriberID.next(node: hub.nodeID)
        eventLoop = MultiThreadedEventLoopGroup.singleton.next()
    }

    func receive(_ broadcast: Broadcast, frame: ByteBuffer?) { received.withLock { $0.append(broadcast) } }
    func flushBatch() {}

    var broadcasts: [Broadcast] { received.withLock { $0 } }
    var events: [String] { broadcasts.map(\.event) }
    var count: Int { received.withLock { $0.count } }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(10))
    }
}

/// One cluster node for tests: a hub with its own RedisBroker.
struct Node: Sendable {
    let broker: RedisBroker
    let hub: Hub

    init(port: Int, name: String, configure: (inout RedisBroker.Configuration) -> Void = { _ in }) {
        var configuration = RedisBroker.Configuration()
        configuration.redis.port = port
        configuration.redis.reconnectDelay = .milliseconds(20)
        configuration.redis.maxReconnectDelay = .milliseconds(200)
        configuration.countsInterval = .milliseconds(100)
        configure(&configuration)
        var logger = Logger(label: "switchboard.redis.\(name)")
        logger.logLevel = .error
        broker = RedisBroker(nodeID: name, configuration: configuration, logger: logger)
        hub = Hub(nodeID: name, broker: broker)
        broker.countSubscribers(of: hub)
    }

    init(hub: Hub, broker: RedisBroker) {
        self.hub = hub
        self.broker = broker
    }

    func subscriber(_ topic: String) -> RecordingSubscriber {
        let subscriber = RecordingSubscriber(hub: hub)
        hub.subscribe(subscriber, to: topic)
        return subscriber
    }
}

/// Runs every node's broker while `body` runs; cancels and waits for them afterwards.
func withRunning<T: Sendable>(_ nodes: [Node], _ body: () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for node in nodes { group.addTask { try await node.broker.run() } }
        do {
            let result = try await body()
            group.cancelAll()
            try await group.waitForAll()
            return result
        } catch {
            group.cancelAll()
            try? await group.waitForAll()
            throw error
        }
    }
}

/// `PUBSUB NUMSUB channel` through a node's own connection.
func numsub(_ client: RESPClient, _ channel: String) async throws -> Int64 {
    let reply = try await client.send(RESPCommand("PUBSUB", "NUMSUB", channel))
    guard let elements = reply.elements, elements.count == 2, let count = elements[1].int else {
        throw RedisProcessError(message: "unexpected NUMSUB reply \(reply)")
    }
    return count
}
