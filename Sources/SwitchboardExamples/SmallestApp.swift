import Hummingbird
import Switchboard
import SwitchboardHummingbird

/// A chat room anyone may join: what a member sends to the room, everyone in it receives.
struct EchoRoom: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        .ok()
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        socket.broadcast(event, payload)
        return .noReply
    }
}

/// The smallest complete app: one hub, one Phoenix socket with one channel, and an HTTP route
/// that broadcasts to the channel's clients. phoenix.js connects to `ws://host:port/socket`.
func smallestApp(port: Int) -> some ApplicationProtocol {
    let hub = Hub()
    var socket = PhoenixSocket(hub: hub)
    socket.channel("room:*", EchoRoom())

    let router = Router()
    // POST /rooms/lobby/announce with any text: every member of room:lobby gets `announce`.
    router.post("/rooms/{room}/announce") { request, context -> HTTPResponse.Status in
        let room = try context.parameters.require("room")
        let text = String(buffer: try await request.body.collect(upTo: 4096))
        hub.broadcast(topic: "room:\(room)", event: "announce", payload: .json(["text": .string(text)]))
        return .accepted
    }
    return Application(
        router: router,
        server: .switchboard(sockets: ["/socket": socket]),
        configuration: .init(address: .hostname("127.0.0.1", port: port))
    )
}
