import Switchboard
import SwitchboardTestSupport
import Testing

@Suite("Connections are freed when they close")
struct LeakTests {
    @Test("Phoenix sessions with joined, left, replaced, crashed and room channels are freed after close")
    func phoenixSessionsAreFreed() async throws {
        try await TestServer.run { server in
            for i in 0..<20 {
                let ws = try await server.connect("vsn=2.0.0&user=u\(i)")
                try await join(ws, "room:a", ref: "1", payload: ["room": "vip"])
                try await join(ws, "room:b", ref: "2")
                try await ws.send(json: v2("3", "3", "room:b", "phx_join"))  // replaces the first room:b
                _ = try await ws.receiveJSON()
                _ = try await ws.receiveJSON()
                _ = try await ws.receiveJSON()
                try await ws.send(json: v2("1", "4", "room:a", "boom"))  // crash
                _ = try await ws.receiveJSON()
                try await ws.send(json: v2("3", "5", "room:b", "phx_leave"))
                _ = try await ws.receiveJSON()
                _ = try await ws.receiveJSON()
                await ws.close()
            }
            #expect(server.log.trackedCount >= 60)
            #expect(await eventually { server.log.aliveTrackedConnections == 0 }, "still alive: \(server.log.aliveTrackedConnections)")
            #expect(server.hub.localTopics().isEmpty)
        }
    }

    @Test("plain clients are freed after close")
    func plainClientsAreFreed() async throws {
        try await TestServer.run { server in
            for i in 0..<20 {
                let ws = try await server.plain(room: "leak", user: "p\(i)")
                try await ws.send(#"{"op":"say","text":"x"}"#)
                _ = try await ws.receiveJSON()
                await ws.close()
            }
            #expect(server.log.trackedCount == 20)
            #expect(await eventually { server.log.aliveTrackedConnections == 0 }, "still alive: \(server.log.aliveTrackedConnections)")
            #expect(await eventually { server.hub.localTopics().isEmpty })
        }
    }
}
