import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Switchboard
import SwitchboardHummingbird
import SwitchboardRedis

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

    @Option(help: "API key for the HTTP API (Authorization: Bearer <key>). Default: $SWITCHBOARD_API_KEY, else a random key printed at start.")
    var apiKey: String?

    @Option(help: "Redis URL (redis://[[user]:password@]host[:port][/db]): nodes with the same Redis act as one. Default: $SWITCHBOARD_REDIS_URL; unset: one in-memory node.")
    var redis: String?

    func run() async throws {
        var logger = Logger(label: "switchboard")
        logger.handler = RecentErrorsLogHandler(wrapping: logger.handler)  // the dashboard's recent errors
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let key: String
        if let apiKey, !apiKey.isEmpty {
            key = apiKey
        } else if let fromEnvironment = ProcessInfo.processInfo.environment["SWITCHBOARD_API_KEY"], !fromEnvironment.isEmpty {
            key = fromEnvironment
        } else {
            key = HubAPI.generateKey()
            print("switchboard: no API key configured; generated one for this run: \(key)")
        }
        var broker: RedisBroker?
        if let url = redis ?? ProcessInfo.processInfo.environment["SWITCHBOARD_REDIS_URL"], !url.isEmpty {
            broker = RedisBroker(configuration: try RedisBroker.Configuration(url: url), logger: logger)
        }
        let app = DemoServer.makeApplication(host: host, port: port, apiKey: key, redis: broker, logger: logger)
        try await app.runService()
    }
}
