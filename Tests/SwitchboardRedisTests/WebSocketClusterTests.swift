import Foundation
import Switchboard
import SwitchboardRESP
import SwitchboardRedis
import SwitchboardTestSupport
import Testing

/// Real switchboard servers on different ports, one real redis-server, Phoenix WebSocket clients.
@Suite("WebSocket clients across Redis-connected nodes", .timeLimit(.minutes(1)))
struct WebSocketClusterTests {
    static func frame(_ json: JSONValue) -> (event: String, payload: JSONValue)? {
        guard let items = json.arrayValue, items.count == 5, let event = items[3].stringValue else { return nil }
        return (event, items[4])
    }

    /// The next broadcast (not a reply) a client receives.
    static func nextBroadcast(_ socket: TestWebSocket) async throws -> (event: String, payload: JSONValue) {
        for _ in 0..<10 {
            let json = try await socket.receiveJSON()
            if let frame = frame(json), frame.event != "phx_reply" { return frame }
        }
        throw TestFailure("no broadcast among ten frames")
    }

    @Test("three nodes: broadcasts and broadcast_from cross nodes exactly once; API shows cluster totals; Redis restart and a node's death")
    func threeNodes() async throws {
        let redis = try RedisServerProcess()
        try await redis.start()
        defer { redis.stop() }
        try await ClusterServer.run(count: 3, redisPort: redis.port) { servers in
            let clients = [try await servers[0].join("room:lobby"), try await servers[1].join("room:lobby"), try await servers[2].join("room:lobby")]
            let probe = servers[0].node.broker
            let subscribed = await eventually { (try? await numsub(probe.client, probe.channel(for: "room:lobby"))) == 3 }
            #expect(subscribed)

            // shout from node 0: every client, on every node, gets it once.
            try await clients[0].send(json: ["1", "2", "room:lobby", "shout", ["n": 1]])
            for client in clients {
                let got = try await Self.nextBroadcast(client)
                #expect(got.event == "shout" && got.payload["n"] == 1)
            }
            // shout_from on node 1: everyone but the sender.
            try await clients[1].send(json: ["1", "3", "room:lobby", "shout_from", ["n": 2]])
            for index in [0, 2] {
                let got = try await Self.nextBroadcast(clients[index])
                #expect(got.event == "shout_from" && got.payload["n"] == 2)
            }
            // The sender's next broadcast is the following shout: it never got its own shout_from,
            // and nobody got anything twice.
            try await clients[1].send(json: ["1", "4", "room:lobby", "shout", ["n": 3]])
            for client in clients {
                let got = try await Self.nextBroadcast(client)
                #expect(got.event == "shout" && got.payload["n"] == 3)
            }

            // The HTTP API of any node shows the cluster total.
            let total = await eventually { (try? await servers[2].apiGet("/api/topics/room:lobby"))?["subscribers"] == 3 }
            #expect(total)
            // Every node reports its counts on its own schedule: each node's view converges to 3.
            for server in servers {
                let listed = await eventually {
                    (try? await server.apiGet("/api/topics"))?["topics"]?.arrayValue?.contains(["topic": "room:lobby", "subscribers": 3]) == true
                }
                #expect(listed, "node on port \(server.port)")
            }

            // Redis restarted: every node reconnects and re-subscribes; cross-node delivery resumes.
            redis.stop()
            #expect(await eventually { servers.allSatisfy { !$0.node.broker.statistics.connected } })
            try await redis.start()
            let resubscribed = await eventually { (try? await numsub(probe.client, probe.channel(for: "room:lobby"))) == 3 }
            #expect(resubscribed)
            try await clients[2].send(json: ["1", "5", "room:lobby", "shout", ["n": 4]])
            for client in clients {
                let got = try await Self.nextBroadcast(client)
                #expect(got.event == "shout" && got.payload["n"] == 4)
            }

            // Node 2 dies: the others keep talking to each other.
            await servers[2].group.triggerGracefulShutdown()
            let gone = await eventually { (try? await numsub(probe.client, probe.channel(for: "room:lobby"))) == 2 }
            #expect(gone)
            try await clients[0].send(json: ["1", "6", "room:lobby", "shout", ["n": 5]])
            for client in clients[0...1] {
                let got = try await Self.nextBroadcast(client)
                #expect(got.event == "shout" && got.payload["n"] == 5)
            }
            for client in clients { await client.close() }
        }
    }
}
