import Foundation
import Switchboard

/// Serves the topics of one namespace: applies its join rule (and the token's topics claim), then
/// hands over to the namespace's built-in behaviour, if it names one. Client events are refused
/// when the namespace does not let clients publish; in a generic namespace that does, an event is
/// rebroadcast to the topic (sender included) and acknowledged with an `ok` reply.
///
/// In a namespace with presence (`presence: true` or `count`), every joined channel is tracked
/// under its user id (the token's `sub`, else the `user_id` connect param with JWT off, else an
/// id made for the connection) with a meta of `online_at` (Unix milliseconds, when the connection opened) and `transport`,
/// merged over the join payload's `presence_meta`; the client may push `presence_update`
/// `{"meta": {…}}`. In a `realtime` namespace clients track themselves (`RealtimeChannel`).
struct NamespaceChannel: TopicChannel {
    let namespace: Namespace
    let access: ServerAccess
    /// The built-in behaviour; `nil`: generic.
    let behaviour: (any TopicChannel)?

    var intercepts: Set<String> { behaviour?.intercepts ?? [] }

    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        switch access.mayJoin(topic: topic, identity: ConnectionIdentity(assigns: socket.assigns)) {
        case .allowed:
            break
        case .refused(let reason):
            return .refuse(reason)
        case .unknownNamespace:
            return .refuse(NamespaceTable.unknownNamespaceReason)  // not reached: routed here by namespace
        }
        let result = try await behaviour?.join(topic: topic, payload: payload, socket: &socket) ?? .ok()
        guard case .ok = result, namespace.presence != .off, namespace.behaviour != .realtime else { return result }
        var meta: [String: JSONValue] = [:]
        if let given = payload["presence_meta"], !given.isNull {
            guard case .object(let members) = given else { return .refuse("presence_meta must be an object") }
            meta = members
        }
        do {
            try socket.track(key: Self.presenceKey(socket), meta: Self.serverMeta(meta, socket: socket))
        } catch {
            return .refuse(error.description)
        }
        return result
    }

    /// The key a connection is tracked under: its user id, else one made for the connection.
    static func presenceKey(_ socket: ChannelSocket) -> String {
        ConnectionIdentity(assigns: socket.assigns).userID ?? "anonymous-\(socket.hub.nodeID)-\(socket.connection.id)"
    }

    /// The client's meta with the server's fields, which the client cannot override. `online_at`
    /// is when the connection opened (read from it, so a channel keeps nothing of its own for it).
    static func serverMeta(_ meta: [String: JSONValue], socket: ChannelSocket) -> JSONValue {
        var meta = meta
        meta["online_at"] = .int(socket.connection.openedAt)
        meta["transport"] = .string(socket.connection.transport)
        return .object(meta)
    }

    /// `presence_update` `{"meta": {…}}`: replaces this connection's meta (server fields kept).
    private func updatePresence(_ payload: Payload, socket: ChannelSocket) -> HandleInResult {
        guard case .object(let meta)? = payload["meta"] else { return .error(reason: "presence_update needs a meta object") }
        do {
            try socket.updatePresence(key: Self.presenceKey(socket), meta: Self.serverMeta(meta, socket: socket))
        } catch {
            return .error(reason: error.description)
        }
        return .ok()
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        if event == "presence_update", namespace.presence != .off, namespace.behaviour != .realtime {
            return updatePresence(payload, socket: socket)
        }
        guard namespace.clientPublish || (event == "presence" && namespace.behaviour == .realtime) else {
            return .error(reason: "read only: only the server publishes to \(socket.topic)")
        }
        if let behaviour {
            return try await behaviour.handleIn(event: event, payload: payload, socket: &socket)
        }
        guard !event.hasPrefix("phx_"), event != PhoenixEvent.disconnect else {
            return .error(reason: "event \(event) is reserved")
        }
        socket.broadcast(event, payload)
        return .ok()
    }

    func handleOut(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleOutResult {
        guard let behaviour else { return .push(payload) }
        return try await behaviour.handleOut(event: event, payload: payload, socket: &socket)
    }

    func terminate(reason: TerminateReason, socket: ChannelSocket) async {
        await behaviour?.terminate(reason: reason, socket: socket)
    }
}

/// Every topic outside the configured namespaces: joins are refused with `unknown namespace`.
struct UnknownNamespaceChannel: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        .refuse(NamespaceTable.unknownNamespaceReason)
    }
}
