import Switchboard

/// `notifications:<id>`: only the connection whose `user_id` connect param is `<id>` may join.
///
/// A joined user may send a notification to another user: push `notify` `{"to": "<id>", "body": "…"}`
/// and the server broadcasts `notification` `{"from": "<own id>", "body": "…"}` to
/// `notifications:<to>` (the demo page's "send a notification"). The HTTP API reaches the same
/// topics: `POST /api/broadcast {"topic": "notifications:<id>", "event": "notification", …}`.
struct NotificationsChannel: TopicChannel {
    /// Longest accepted user id and notification body, in characters.
    static let maxUserIDLength = 64
    static let maxBodyLength = 500

    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        let owner = topic.dropFirst("notifications:".count)
        guard let user: String = socket.assigns["user_id"], user == owner else { return .refuse("unauthorized") }
        return .ok()
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        guard event == "notify" else { return .error(reason: "unknown event") }
        guard let to = payload["to"]?.stringValue, !to.isEmpty, to.count <= Self.maxUserIDLength else {
            return .error(reason: "to must be a user id (1 to \(Self.maxUserIDLength) characters)")
        }
        guard let body = payload["body"]?.stringValue, !body.isEmpty, body.count <= Self.maxBodyLength else {
            return .error(reason: "body must be 1 to \(Self.maxBodyLength) characters")
        }
        let from: String = socket.assigns["user_id"] ?? ""
        socket.hub.broadcast(topic: "notifications:\(to)", event: "notification", payload: ["from": .string(from), "body": .string(body)])
        return .ok()
    }
}
