import Foundation
import Hummingbird
import Switchboard
import SwitchboardHummingbird

/// `switchboard-examples [smallest] [--port N]`: serves the README's library examples on
/// 127.0.0.1 (default port 8080). `smallest` runs the smallest app alone; without it, the
/// examples server: the smallest app's room at `/socket` and its announce route, Celerity's
/// greeting at `/greet/{user}`, and the to-do feed (`/todos/socket`, `POST /todos`).
@main
struct Examples {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        let port =
            arguments.firstIndex(of: "--port").flatMap {
                arguments.index(after: $0) < arguments.endIndex ? Int(arguments[arguments.index(after: $0)]) : nil
            } ?? 8080
        if arguments.contains("smallest") {
            return try await smallestApp(port: port).runService()
        }
        try await examplesServer(port: port).runService()
    }

    static func examplesServer(port: Int) -> some ApplicationProtocol {
        let hub = Hub()
        var socket = PhoenixSocket(hub: hub)
        socket.channel("room:*", EchoRoom())
        let router = Router()
        let plainChannels = Router(context: PlainUpgradeContext.self)
        plainChannels.plainChannel("/greet/{user}", channel: hub.plainChannel("greet"), handler: GreetingChannel())
        addTodoRoutes(to: router, plainChannels: plainChannels, hub: hub)
        return Application(
            router: router,
            server: .switchboard(sockets: ["/socket": socket], plainChannels: plainChannels),
            configuration: .init(address: .hostname("127.0.0.1", port: port))
        )
    }
}
