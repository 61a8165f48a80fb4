import Logging
import Switchboard
import SwitchboardRedis
import SwitchboardTestSupport
import Synchronization
import Testing

/// The same conformance checks against every broker implementation.
@Suite("Broker conformance", .timeLimit(.minutes(1)))
struct BrokerConformanceTests {
    @Test("MemoryBroker", arguments: BrokerConformance.allCases)
    func memory(_ check: BrokerConformance) async throws {
        let recorder = RecordingBroker(MemoryBroker())
        let hub = Hub(broker: recorder)
        try await check.run(
            BrokerUnderTest(hub: hub, subscribedUpstream: { _ in }, settled: { _ in }, brokerCalls: { recorder.calls.withLock { $0 } })
        )
    }

    @Test("RedisBroker", arguments: BrokerConformance.allCases)
    func redis(_ check: BrokerConformance) async throws {
        try await withRedisServer { server in
            var configuration = RedisBroker.Configuration()
            configuration.redis.port = server.port
            var logger = Logger(label: "conformance")
            logger.logLevel = .error
            let broker = RedisBroker(nodeID: "conformance", configuration: configuration, logger: logger)
            let recorder = RecordingBroker(broker)
            let hub = Hub(nodeID: broker.nodeID, broker: recorder)
            let echoesExpected = Mutex(0)
            let node = BrokerUnderTest(
                hub: hub,
                subscribedUpstream: { topic in
                    let subscribed = try await eventually {
                        broker.statistics.connected ? try await numsub(broker.client, broker.channel(for: topic)) == 1 : false
                    }
                    #expect(subscribed, "\(topic) never subscribed in Redis")
                },
                settled: { count in
                    let target = echoesExpected.withLock {
                        $0 += count
                        return $0
                    }
                    let echoed = await eventually { broker.statistics.ownEchoes >= target }
                    #expect(echoed, "only \(broker.statistics.ownEchoes) of \(target) echoes came back")
                    #expect(broker.statistics.received == 0)
                },
                brokerCalls: { recorder.calls.withLock { $0 } }
            )
            try await withRunning([Node(hub: hub, broker: broker)]) {
                try await check.run(node)
            }
        }
    }
}
