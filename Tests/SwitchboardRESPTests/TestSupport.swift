import NIOCore
import SwitchboardRESP
import SwitchboardTestSupport
import Synchronization

/// Runs `body` with `client.run()` going in a child task; cancels it afterwards and waits for it.
func withRunning<T: Sendable>(_ client: RESPClient, _ body: (RESPClient) async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        do {
            let result = try await body(client)
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

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(20))
    }
}

/// Thread-safe collection of received messages.
final class Inbox: Sendable {
    let items = Mutex<[String]>([])

    func append(_ message: RESPPubSubMessage) {
        let text = String(buffer: message.payload)
        items.withLock { $0.append(text) }
    }

    var all: [String] { items.withLock { $0 } }
}

/// A client for a local test server, with short timeouts and reconnect delays.
func testClient(port: Int, configure: (inout RESPClient.Configuration) -> Void = { _ in }) -> RESPClient {
    var configuration = RESPClient.Configuration()
    configuration.host = "127.0.0.1"
    configuration.port = port
    configuration.reconnectDelay = .milliseconds(20)
    configuration.maxReconnectDelay = .milliseconds(200)
    configuration.connectTimeout = .seconds(2)
    configure(&configuration)
    return RESPClient(configuration: configuration)
}

/// `PUBSUB NUMSUB channel` → the number of subscribed connections.
func numsub(_ client: RESPClient, _ channel: String) async throws -> Int64 {
    let reply = try await client.send(RESPCommand("PUBSUB", "NUMSUB", channel))
    guard let elements = reply.elements, elements.count == 2, let count = elements[1].int else {
        throw RedisProcessError(message: "unexpected NUMSUB reply \(reply)")
    }
    return count
}
