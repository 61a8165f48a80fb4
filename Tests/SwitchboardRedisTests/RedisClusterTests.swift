import Foundation
import NIOCore
import Switchboard
import SwitchboardRESP
import SwitchboardRedis
import SwitchboardTestSupport
import Testing

/// Two or three hubs, each with its own RedisBroker, sharing one real redis-server.
@Suite("Redis cluster", .timeLimit(.minutes(1)))
struct RedisClusterTests {
    /// Waits until every node is connected and subscribed, so Redis counts one subscription per node.
    static func waitSubscribed(_ nodes: [Node], _ topic: String, expected: Int64? = nil) async throws {
        let client = nodes[0].broker.client
        let channel = nodes[0].broker.channel(for: topic)
        let ok = try await eventually {
            guard nodes.allSatisfy({ $0.broker.statistics.connected }) else { return false }
            return try await numsub(client, channel) == expected ?? Int64(nodes.count)
        }
        #expect(ok, "PUBSUB NUMSUB \(channel) never reached \(expected ?? Int64(nodes.count))")
    }

    @Test("three nodes: every subscriber gets every broadcast exactly once, in publish order per publisher")
    func exactlyOnceInOrder() async throws {
        try await withRedisServer { server in
            let nodes = ["a", "b", "c"].map { Node(port: server.port, name: $0) }
            try await withRunning(nodes) {
                let subscribers = nodes.map { $0.subscriber("room:lobby") }
                try await Self.waitSubscribed(nodes, "room:lobby")
                await withTaskGroup(of: Void.self) { group in
                    for node in nodes {
                        group.addTask {
                            for i in 0..<200 {
                                node.hub.broadcast(
                                    topic: "room:lobby",
                                    event: "msg",
                                    payload: ["from": .string(node.hub.nodeID), "seq": .int(Int64(i))]
                                )
                            }
                        }
                    }
                }
                // Every node's own echoes came back too: a duplicate would have been delivered by now.
                #expect(await eventually { nodes.allSatisfy { $0.broker.statistics.received == 400 && $0.broker.statistics.ownEchoes == 200 } })
                for subscriber in subscribers {
                    #expect(await eventually { subscriber.count == 600 })
                    #expect(subscriber.count == 600)
                    for origin in ["a", "b", "c"] {
                        let sequence = subscriber.broadcasts.filter { $0.payload["from"]?.stringValue == origin }.compactMap {
                            $0.payload["seq"]?.intValue
                        }
                        #expect(sequence == (0..<200).map { Int64($0) }, "from \(origin)")
                    }
                }
                #expect(await eventually { nodes.allSatisfy { $0.broker.statistics.published == 200 } })
                #expect(nodes.allSatisfy { $0.broker.statistics.dropped == 0 && $0.broker.statistics.malformed == 0 })
            }
        }
    }

    @Test("broadcast_from excludes the sender on its node and is delivered to everyone else on every node")
    func broadcastFromAcrossNodes() async throws {
        try await withRedisServer { server in
            let a = Node(port: server.port, name: "a")
            let b = Node(port: server.port, name: "b")
            try await withRunning([a, b]) {
                let sender = a.subscriber("room:x")
                let neighbour = a.subscriber("room:x")
                let remote = b.subscriber("room:x")
                try await Self.waitSubscribed([a, b], "room:x")
                // From the sender's node, and from another node (the HTTP API or channel code elsewhere).
                a.hub.publish(Broadcast(topic: "room:x", event: "from_a", payload: .json(.emptyObject), excluding: sender.id))
                b.hub.publish(Broadcast(topic: "room:x", event: "from_b", payload: .json(.emptyObject), excluding: sender.id))
                #expect(await eventually { neighbour.count == 2 && remote.count == 2 })
                #expect(Set(neighbour.events) == ["from_a", "from_b"])
                #expect(Set(remote.events) == ["from_a", "from_b"])
                // A marker from b after its excluded broadcast: once the sender has it, b's earlier
                // broadcast has been processed on a too (per-publisher order).
                b.hub.broadcast(topic: "room:x", event: "marker", payload: .emptyObject)
                #expect(await eventually { sender.count >= 1 })
                #expect(sender.events == ["marker"])
            }
        }
    }

    @Test("one Redis subscription per node per topic (PUBSUB NUMSUB), dropped when a node's last subscriber leaves")
    func subscriptionCounting() async throws {
        try await withRedisServer { server in
            let a = Node(port: server.port, name: "a")
            let b = Node(port: server.port, name: "b")
            try await withRunning([a, b]) {
                let a1 = a.subscriber("counted")
                let a2 = a.subscriber("counted")
                let b1 = b.subscriber("counted")
                try await Self.waitSubscribed([a, b], "counted", expected: 2)
                a.hub.unsubscribe(a1, from: "counted")
                try await Self.waitSubscribed([a, b], "counted", expected: 2)
                a.hub.unsubscribe(a2, from: "counted")
                try await Self.waitSubscribed([a, b], "counted", expected: 1)
                // a no longer receives what b publishes; b's own subscriber still does.
                b.hub.broadcast(topic: "counted", event: "only_b", payload: .emptyObject)
                #expect(await eventually { b1.count == 1 })
                b.hub.unsubscribe(b1, from: "counted")
                try await Self.waitSubscribed([a, b], "counted", expected: 0)
                #expect(a1.count == 0 && a2.count == 0)
            }
        }
    }

    @Test("topic subscriber counts summed across nodes")
    func clusterCounts() async throws {
        try await withRedisServer { server in
            let a = Node(port: server.port, name: "a")
            let b = Node(port: server.port, name: "b")
            try await withRunning([a, b]) { () async throws in
                let subscribers = [a.subscriber("room:1"), a.subscriber("room:1"), b.subscriber("room:1"), b.subscriber("room:2")]
                #expect(subscribers.count == 4)
                #expect(await eventually { (try? await a.broker.clusterSubscriberCount(topic: "room:1")) == 3 })
                #expect(await eventually { (try? await b.broker.clusterSubscriberCounts()) == ["room:1": 3, "room:2": 1] })
                #expect(try await a.broker.clusterSubscriberCount(topic: "room:2") == 1)
                #expect(try await a.broker.clusterSubscriberCount(topic: "nobody") == 0)
            }
        }
    }

    @Test("disconnect by socket id reaches the connection on another node")
    func clusterDisconnect() async throws {
        try await withRedisServer { server in
            let a = Node(port: server.port, name: "a")
            let b = Node(port: server.port, name: "b")
            try await withRunning([a, b]) {
                let listener = a.subscriber("user_socket:42")
                // Both connected (b publishes), only a subscribed.
                try await Self.waitSubscribed([a, b], "user_socket:42", expected: 1)
                b.hub.disconnect(socketID: "user_socket:42")
                #expect(await eventually { listener.count == 1 })
                #expect(listener.events == [PhoenixEvent.disconnect])
            }
        }
    }

    @Test("Redis restarted: local delivery continues, the outage is counted, cross-node delivery resumes")
    func redisRestart() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.stop() }
        let a = Node(port: server.port, name: "a")
        let b = Node(port: server.port, name: "b")
        try await withRunning([a, b]) {
            let onA = a.subscriber("room:r")
            let onB = b.subscriber("room:r")
            try await Self.waitSubscribed([a, b], "room:r")
            a.hub.broadcast(topic: "room:r", event: "before", payload: .emptyObject)
            #expect(await eventually { onB.events == ["before"] })

            server.stop()
            #expect(await eventually { !a.broker.statistics.connected && !b.broker.statistics.connected })
            a.hub.broadcast(topic: "room:r", event: "during", payload: .emptyObject)
            #expect(await eventually { onA.events == ["before", "during"] })
            #expect(a.broker.statistics.dropped >= 1)

            try await server.start()
            try await Self.waitSubscribed([a, b], "room:r")
            b.hub.broadcast(topic: "room:r", event: "after_b", payload: .emptyObject)
            a.hub.broadcast(topic: "room:r", event: "after_a", payload: .emptyObject)
            #expect(
                await eventually {
                    onA.events == ["before", "during", "after_b", "after_a"] || onA.events == ["before", "during", "after_a", "after_b"]
                }
            )
            #expect(await eventually { onB.events.count == 3 })
            // What was published during the outage did not reach the other node (documented).
            #expect(Set(onB.events) == ["before", "after_a", "after_b"])
            #expect(a.broker.statistics.outages == 1 && b.broker.statistics.outages == 1)
        }
    }

    @Test("publishing never waits for Redis: a frozen Redis does not block publishers, and the backlog flows afterwards")
    func frozenRedis() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.stop() }
        let a = Node(port: server.port, name: "a")
        let b = Node(port: server.port, name: "b")
        try await withRunning([a, b]) {
            let onA = a.subscriber("room:f")
            let onB = b.subscriber("room:f")
            try await Self.waitSubscribed([a, b], "room:f")
            try server.signal(SIGSTOP)
            defer { try? server.signal(SIGCONT) }
            let started = ContinuousClock.now
            for i in 0..<1000 { a.hub.broadcast(topic: "room:f", event: "m", payload: ["i": .int(Int64(i))]) }
            #expect(ContinuousClock.now - started < .seconds(2))
            #expect(await eventually { onA.count == 1000 })
            #expect(onB.count == 0)
            try server.signal(SIGCONT)
            #expect(await eventually { onB.count == 1000 })
            #expect(onB.broadcasts.compactMap { $0.payload["i"]?.intValue } == (0..<1000).map { Int64($0) })
            // Pipelined in batches while Redis was frozen, not one write per publish.
            #expect(a.broker.statistics.batches < 100)
        }
    }

    @Test("the queue to Redis is bounded: beyond it, publishes are dropped and counted (still delivered locally)")
    func boundedQueue() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.stop() }
        let a = Node(port: server.port, name: "a") { $0.maxQueuedMessages = 10 }
        let b = Node(port: server.port, name: "b")
        try await withRunning([a, b]) {
            let onA = a.subscriber("room:q")
            let onB = b.subscriber("room:q")
            try await Self.waitSubscribed([a, b], "room:q")
            try server.signal(SIGSTOP)
            defer { try? server.signal(SIGCONT) }
            for i in 0..<100 { a.hub.broadcast(topic: "room:q", event: "m", payload: ["i": .int(Int64(i))]) }
            #expect(await eventually { onA.count == 100 })
            // At most one batch in flight and ten queued (each at most the queue limit); the rest was dropped.
            let dropped = a.broker.statistics.dropped
            #expect(dropped >= 80 && dropped < 100)
            try server.signal(SIGCONT)
            #expect(await eventually { onB.count == 100 - dropped })
            // What got through is still in order.
            let received = onB.broadcasts.compactMap { $0.payload["i"]?.intValue }
            #expect(received == received.sorted())
        }
    }
}
