import Switchboard

/// A chat room: `room:<name>`. Join with `{"user": "<name>"}`; push `new_msg` `{"body": "…"}`.
/// Everyone in the room (sender included) gets `new_msg` `{"user", "body"}`; the others get
/// `user_joined` / `user_left` when someone joins, leaves or disconnects. `ping` is answered with
/// a `pong` push to the sender alone, carrying the same payload.
struct RoomChannel: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        let user = payload["user"]?.stringValue ?? "anonymous"
        guard user.count <= 64 else { return .refuse("user name too long") }
        socket.assigns["user"] = user
        socket.broadcastFrom("user_joined", ["user": .string(user)])
        return .ok()
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        switch event {
        case "new_msg":
            guard let body = payload["body"]?.stringValue, !body.isEmpty else { return .error(reason: "body is required") }
            let user: String = socket.assigns["user"] ?? "anonymous"
            socket.broadcast("new_msg", ["user": .string(user), "body": .string(body)])
            return .ok()
        case "ping":
            socket.push("pong", payload)
            return .ok()
        default:
            return .error(reason: "unknown event")
        }
    }

    func terminate(reason: TerminateReason, socket: ChannelSocket) async {
        let user: String = socket.assigns["user"] ?? "anonymous"
        socket.broadcastFrom("user_left", ["user": .string(user)])
    }
}
