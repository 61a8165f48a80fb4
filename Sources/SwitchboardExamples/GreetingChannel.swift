import Switchboard
import SwitchboardHummingbird

/// Celerity's greeting, as a plain WebSocket channel at `/greet/{user}`: the user comes from the
/// URL on connect; `{"name": "Alice"}` is answered with `{"greeting": "Hello, Alice"}`.
struct GreetingChannel: PlainChannelHandler {
    struct Greeting: Decodable { let name: String }

    func connect(_ request: ConnectRequest, channel: PlainChannel) async throws -> PlainConnectResult<String> {
        guard let user = request.parameters["user"], !user.isEmpty else { return .refuse(status: 400, reason: "user required") }
        return .accept(user)  // the client's context: who is connected
    }

    func message(_ message: PlainMessage, from client: PlainClient<String>) async throws {
        let greeting = try message.decode(as: Greeting.self)  // a bad message is answered with an error
        client.send(json: ["greeting": .string("Hello, \(greeting.name)"), "from": .string(client.context)])
    }
}
