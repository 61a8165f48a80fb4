import Switchboard

/// `switchboard:dashboard`: the live statistics `DashboardService` publishes every second (event
/// `stats`). Joining needs the server's API key in the join payload (`{"key": "…"}`), since a
/// browser cannot send an `Authorization` header on a WebSocket; anything else is refused with
/// `{"reason": "unauthorized"}`. Clients only listen: every push is answered with an error.
struct DashboardChannel: TopicChannel {
    /// The reserved topic (the `switchboard:` prefix is the server's own).
    static let topic = "switchboard:dashboard"

    private let apiKey: [UInt8]

    init(apiKey: String) {
        self.apiKey = Array(apiKey.utf8)
    }

    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        guard let given = payload["key"]?.stringValue, Self.constantTimeEquals(Array(given.utf8), apiKey) else {
            return .refuse("unauthorized")
        }
        return .ok(["interval_ms": 1000])
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        .error(reason: "read only: the server publishes to \(socket.topic)")
    }

    /// Whether `given` equals `expected`, in a time that depends only on `expected`'s length (a
    /// guess that shares a prefix with the key is not answered any faster or slower).
    static func constantTimeEquals(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        guard !expected.isEmpty else { return false }
        var difference = UInt(bitPattern: given.count ^ expected.count)
        for index in expected.indices {
            let byte = given.isEmpty ? 0 : given[index % given.count]
            difference |= UInt(byte ^ expected[index])
        }
        return difference == 0
    }
}
