import Foundation
import Switchboard
import SwitchboardHummingbird

/// `GET /ws/<topic>`: a plain WebSocket subscribed to one hub topic. Each message published to the
/// topic arrives as its payload exactly (`?format=envelope` wraps it as `{"event","payload"}`).
/// Who may subscribe is the topic's namespace's join rule (`ServerAccess.authorizePlain`). Where
/// the namespace lets clients publish (a generic namespace with `publish: true`), a text frame
/// holding a JSON object is published to the topic as event `message` (with `?format=envelope`,
/// `{"event": …, "payload": {…}}` names the event), a binary frame as a binary `message`; the
/// sender receives it too. Elsewhere a message is answered with a `read_only` error.
struct TopicSubscriberChannel: PlainChannelHandler {
    var access: ServerAccess = .builtIn

    func connect(_ request: ConnectRequest, channel: PlainChannel) async throws -> PlainConnectResult<String> {
        let raw = request.parameters["topic"] ?? ""
        let topic = raw.removingPercentEncoding ?? raw  // clients may encode the `:` of `feed:news`
        if let since = request.params["since"], StreamPosition(since) == nil {
            return .refuse(status: 400, reason: "since must be <epoch>:<offset>, as the history API and Phoenix refs give it")
        }
        switch await access.authorizePlain(topic: topic, request: request) {
        case .success: return .accept(topic)
        case .failure(let refusal): return .refuse(status: 403, reason: refusal.reason)
        }
    }

    /// `?since=<epoch>:<offset>` on a topic with history resumes after it; when that cannot be
    /// exact, the first frame says so, `{"recovered": false, "epoch", "offset"}`, then live ones.
    func connected(_ client: PlainClient<String>) async throws {
        guard let text = client.request.params["since"], let since = StreamPosition(text) else {
            return client.subscribe(topic: client.context)
        }
        if case .notRecovered(let current)? = await client.subscribe(topic: client.context, since: since) {
            client.send(json: ["recovered": false, "epoch": .string(current.epoch), "offset": .int(Int64(current.offset))])
        }
    }

    func message(_ message: PlainMessage, from client: PlainClient<String>) async throws {
        let topic = client.context
        guard let namespace = access.namespaces.namespace(of: topic), namespace.clientPublish, namespace.behaviour == .generic else {
            throw PlainMessageError(code: "read_only", "clients cannot publish to \(topic)")
        }
        if message.isBinary {
            return client.channel.hub.broadcast(topic: topic, event: PlainChannel.messageEvent, payload: .binary(message.data))
        }
        let json = try message.json()
        var event = PlainChannel.messageEvent
        var payload = json
        if client.request.params["format"] == "envelope", let name = json["event"]?.stringValue {
            event = name
            payload = json["payload"] ?? .emptyObject
        }
        guard payload.objectValue != nil else { throw PlainMessageError(code: "invalid_message", "publish a JSON object") }
        guard !event.isEmpty, !event.hasPrefix("phx_"), event != PhoenixEvent.disconnect else {
            throw PlainMessageError(code: "reserved_event", "event \(event) is reserved")
        }
        client.channel.hub.broadcast(topic: topic, event: event, payload: .json(payload))
    }
}

/// `/chat/{room}?user=<name>`: a plain JSON chat whose rooms are the Phoenix `room:<room>` topics,
/// so plain and Phoenix clients talk to each other, each in its own format.
struct PlainChatChannel: PlainChannelHandler {
    struct Client: Sendable {
        let user: String
        let room: String
    }

    /// Phoenix room events, rendered for plain chat clients (encoded once per broadcast).
    static let format = FrameFormat.plainJSON(name: "plain-chat") { broadcast in
        guard case .json(let payload) = broadcast.payload else { return nil }
        switch broadcast.event {
        case "new_msg": return ["type": "message", "user": payload["user"] ?? .null, "body": payload["body"] ?? .null]
        case "user_joined": return ["type": "joined", "user": payload["user"] ?? .null]
        case "user_left": return ["type": "left", "user": payload["user"] ?? .null]
        default: return nil
        }
    }

    func connect(_ request: ConnectRequest, channel: PlainChannel) async throws -> PlainConnectResult<Client> {
        let user = request.params["user"].flatMap { $0.isEmpty ? nil : $0 } ?? "anonymous"
        guard user.count <= 64 else { return .refuse(status: 400, reason: "user name too long") }
        return .accept(Client(user: user, room: request.parameters["room"] ?? "lobby"))
    }

    func connected(_ client: PlainClient<Client>) async throws {
        client.join(room: client.context.room)
        client.channel.broadcast(json: ["user": .string(client.context.user)], toRoom: client.context.room, event: "user_joined")
    }

    func message(_ message: PlainMessage, from client: PlainClient<Client>) async throws {
        guard let json = try? message.json() else {
            return client.send(json: ["type": "error", "reason": "invalid JSON"])
        }
        guard let body = json["body"]?.stringValue, !body.isEmpty else {
            return client.send(json: ["type": "error", "reason": "body is required"])
        }
        client.channel.broadcast(json: ["user": .string(client.context.user), "body": .string(body)], toRoom: client.context.room, event: "new_msg")
    }

    func disconnected(_ client: PlainClient<Client>) async {
        client.channel.broadcast(json: ["user": .string(client.context.user)], toRoom: client.context.room, event: "user_left")
    }
}
