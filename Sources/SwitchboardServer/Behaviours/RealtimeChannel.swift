import Foundation
import Switchboard

/// `realtime:<name>`: Supabase Realtime "Broadcast" semantics, so Supabase's client libraries work.
///
/// Join payload `{"config": {"broadcast": {"self": Bool, "ack": Bool}, "private": Bool}, …}`; the
/// reply is `{"postgres_changes": []}` (the shape supabase clients validate). A `broadcast` event
/// `{"type": "broadcast", "event": …, "payload": …}` is rebroadcast to the topic in that same shape:
/// to the sender too only with `self: true`, acknowledged with an `ok` reply only with `ack: true`.
/// Private channels need an access token (there is no token verification in the demo yet, so any
/// non-empty token is accepted; the standalone server's JWT auth will check it).
///
/// With presence on, clients track themselves: the `presence` event `{"event": "track",
/// "payload": {…}}` tracks (or updates) the channel under the join's `config.presence.key` (a
/// generated key when empty), `{"event": "untrack"}` untracks; `type: "presence"` is optional and
/// `event` is compared case-insensitively, as Supabase's server does. Joiners that enable presence
/// (`config.presence.enabled`) get `presence_state`; the others get it with their first track.
struct RealtimeChannel: TopicChannel {
    /// Whether the namespace tracks presence.
    var presence = false

    static let presenceKeyAssign = "realtime.presence_key"
    static let presenceMetaAssign = "realtime.presence_meta"
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        guard topic.count > "realtime:".count else { return .refuse("TopicNameRequired: a channel name is required") }
        let config = payload["config"]
        let token = payload["access_token"]?.stringValue ?? payload["user_token"]?.stringValue
        if config?["private"]?.boolValue == true, token?.isEmpty ?? true {
            return .refuse("Unauthorized: private channels need an access token")
        }
        socket.assigns["self"] = config?["broadcast"]?["self"]?.boolValue ?? false
        socket.assigns["ack"] = config?["broadcast"]?["ack"]?.boolValue ?? false
        if presence {
            let key = config?["presence"]?["key"]?.stringValue ?? ""
            socket.assigns[Self.presenceKeyAssign] = key.isEmpty ? UUID().uuidString.lowercased() : key
            // As Supabase's server: the snapshot follows the join when the client asked for
            // presence (its clients do when presence callbacks are attached); a client that
            // tracks later gets it with its first track.
            if config?["presence"]?["enabled"]?.boolValue == true { socket.pushPresenceState() }
        }
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
            guard presence else { return .ok() }  // acknowledged so clients do not time out
            return handlePresence(payload, socket: &socket)
        default:
            return .error(reason: "unknown event")
        }
    }

    private func handlePresence(_ payload: Payload, socket: inout ChannelSocket) -> HandleInResult {
        guard let event = payload["event"]?.stringValue else { return .ok() }  // Supabase: ok, ignored
        let key: String = socket.assigns[Self.presenceKeyAssign] ?? ""
        switch event.lowercased() {
        case "track":
            let meta = payload["payload"] ?? .emptyObject
            do {
                if socket.trackedKeys.contains(key) {
                    // A track of the meta already tracked changes nothing (no diff), as in Supabase.
                    guard socket.assigns[Self.presenceMetaAssign] != meta else { return .ok() }
                    try socket.updatePresence(key: key, meta: meta)
                } else {
                    try socket.track(key: key, meta: meta)
                }
            } catch {
                return .error(reason: error.description)
            }
            socket.assigns[Self.presenceMetaAssign] = meta
            return .ok()
        case "untrack":
            socket.untrack(key: key)
            socket.assigns[Self.presenceMetaAssign] = JSONValue?.none
            return .ok()
        default:
            return .error(.emptyObject)
        }
    }
}
