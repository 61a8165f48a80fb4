import ArgumentParser
import Hummingbird
import Logging
import Switchboard
import SwitchboardHummingbird

/// `switchboard`: a realtime server speaking Phoenix Channels.
@main
struct SwitchboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "Realtime channels over WebSocket (Phoenix Channels protocol)."
    )

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 4000

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        var logger = Logger(label: "switchboard")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let app = DemoServer.makeApplication(host: host, port: port, logger: logger)
        try await app.runService()
    }
}
