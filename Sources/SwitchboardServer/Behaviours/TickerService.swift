import ServiceLifecycle
import Switchboard

/// Broadcasts `tick` `{"count": n}` to the `ticker` topic every second (the same n for everyone).
struct TickerService: Service {
    let hub: Hub
    var interval: Duration = .seconds(1)

    func run() async throws {
        var count: Int64 = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: interval)
            count += 1
            hub.broadcast(topic: "ticker", event: "tick", payload: ["count": .int(count)])
        }
    }
}
