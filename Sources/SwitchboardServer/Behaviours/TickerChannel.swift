import Switchboard

/// `ticker`: anyone may join; `TickerService` broadcasts `tick` `{"count": n}` every second.
struct TickerChannel: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        .ok()
    }
}
