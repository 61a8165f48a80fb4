import Switchboard

/// `realtime:<name>`: Supabase Realtime "Broadcast" semantics, so Supabase's client libraries work.
///
/// Join payload `{"config": {"broadcast": {"self": Bool, "ack": Bool}, "private": Bool}, …}`; the
/// reply is `{"postgres_changes": []}` (the shape supabase clients validate). A `broadcast` event
/// `{"type": "broadcast", "event": …, "payload": …}` is rebroadcast to the topic in that same shape:
/// to the sender too only with `self: true`, acknowledged with an `ok` reply only with `ack: true`.
/// Private channels need an access token (there is no token verification in the demo yet, so any
/// non-empty token is accepted; the standalone server's JWT auth will check it).
struct RealtimeChannel: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        guard topic.count > "realtime:".count else { return .refuse("TopicNameRequired: a channel name is required") }
        let config = payload["config"]
        let token = payload["access_token"]?.stringValue ?? payload["user_token"]?.stringValue
        if config?["private"]?.boolValue == true, token?.isEmpty ?? true {
            return .refuse("Unauthorized: private channels need an access token")
        }
        socket.assigns["self"] = config?["broadcast"]?["self"]?.boolValue ?? false
        socket.assigns["ack"] = config?["broadcast"]?["ack"]?.boolValue ?? false
        return .ok(["postgres_changes": []])
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        switch event {
        case "broadcast":
            guard case .json(let message) = payload, message["event"]?.stringValue != nil else {
                return .error(reason: "broadcast needs an event")
            }
            if socket.assigns["self"] == true {
                socket.broadcast("broadcast", message)
            } else {
                socket.broadcastFrom("broadcast", message)
            }
            return socket.assigns["ack"] == true ? .ok() : .noReply
        case "access_token":
            return .noReply  // token refresh: accepted silently, as Supabase's server does
        case "presence":
            return .ok()  // presence arrives with the presence issue; acknowledged so clients do not time out
        default:
            return .error(reason: "unknown event")
        }
    }
}
