import Switchboard
import SwitchboardHummingbird

/// Which topics a client may subscribe to in the demo server, whatever the transport.
enum DemoAuthorization {
    static func mayJoin(topic: String, userID: String?) -> Result<Void, PlainMessageError> {
        if topic.hasPrefix("notifications:") {
            return topic.dropFirst("notifications:".count) == userID ?? "" ? .success(()) : .failure(PlainMessageError(code: "unauthorized", "unauthorized"))
        }
        if topic == "ticker" || topic.hasPrefix("room:") || topic.hasPrefix("public:") || topic.hasPrefix("realtime:") {
            return .success(())
        }
        return .failure(PlainMessageError(code: "unknown_topic", "unknown topic \(topic)"))
    }
}

/// `GET /ws/<topic>`: a plain WebSocket subscribed to one hub topic. Each message published to the
/// topic arrives as its payload exactly (`?format=envelope` wraps it as `{"event","payload"}`).
/// Clients may not publish through it.
struct TopicSubscriberChannel: PlainChannelHandler {
    func connect(_ request: PlainConnectRequest, channel: PlainChannel) async throws -> PlainConnectResult<String> {
        let topic = request.parameters["topic"] ?? ""
        switch DemoAuthorization.mayJoin(topic: topic, userID: request.query["user_id"]) {
        case .success: return .accept(topic)
        case .failure(let error): return .refuse(status: 403, reason: error.message)
        }
    }

    func connected(_ client: PlainClient<String>) async throws {
        client.subscribe(topic: client.context)
    }

    func message(_ message: PlainMessage, from client: PlainClient<String>) async throws {
        throw PlainMessageError(code: "read_only", "clients cannot publish to \(client.context)")
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

    func connect(_ request: PlainConnectRequest, channel: PlainChannel) async throws -> PlainConnectResult<Client> {
        let user = request.query["user"].flatMap { $0.isEmpty ? nil : $0 } ?? "anonymous"
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
