import Switchboard

/// `ticker`: anyone may join; `TickerService` broadcasts `tick` `{"count": n}` every second.
struct TickerChannel: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        .ok()
    }
}

/// `public:<name>`: anyone may join; only the server and the HTTP API publish; nothing is sent on
/// join or leave (the plain fan-out case: dashboards, price tickers, benchmarks).
struct PublicChannel: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        .ok()
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        .error(reason: "read only: only the server publishes to \(socket.topic)")
    }
}
