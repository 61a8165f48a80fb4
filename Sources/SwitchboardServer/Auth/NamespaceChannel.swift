import Switchboard

/// Serves the topics of one namespace: applies its join rule (and the token's topics claim), then
/// hands over to the namespace's built-in behaviour, if it names one. Client events are refused
/// when the namespace does not let clients publish; in a generic namespace that does, an event is
/// rebroadcast to the topic (sender included) and acknowledged with an `ok` reply.
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
        guard let behaviour else { return .ok() }
        return try await behaviour.join(topic: topic, payload: payload, socket: &socket)
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        guard namespace.clientPublish else {
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
