import ArgumentParser
import Configuration
import Foundation
import Hummingbird
import Logging
import NIOCore
import Switchboard
import SwitchboardHummingbird
import SwitchboardRedis

/// `switchboard`: a realtime server speaking Phoenix Channels.
@main
struct SwitchboardCommand: AsyncParsableCommand {
    /// This build's version (`--version`, `switchboard_build_info` in `/metrics`).
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "Realtime channels over WebSocket (Phoenix Channels protocol), SSE and long-poll.",
        discussion: """
            Configuration comes from flags, SWITCHBOARD_* environment variables and a config file \
            (--config, YAML or JSON); a flag wins over the environment, the environment over the \
            file, the file over the defaults. Environment variables: SWITCHBOARD_CONFIG, \
            SWITCHBOARD_HOST, SWITCHBOARD_PORT, SWITCHBOARD_LOG_LEVEL, SWITCHBOARD_LOG_FORMAT, \
            SWITCHBOARD_API_KEY, SWITCHBOARD_REDIS_URL, SWITCHBOARD_ALLOWED_ORIGINS (comma-separated), \
            SWITCHBOARD_JWT_ALGORITHM, SWITCHBOARD_JWT_SECRET, SWITCHBOARD_JWT_PUBLIC_KEY (PEM text), \
            SWITCHBOARD_JWT_PUBLIC_KEY_FILE, SWITCHBOARD_JWT_TOPICS_CLAIM, SWITCHBOARD_JWT_REQUIRE_EXP, \
            SWITCHBOARD_JWT_ALLOW_ANONYMOUS, SWITCHBOARD_JWT_LEEWAY (each is SWITCHBOARD_ and the \
            file key in capitals, . as _). Namespaces (topic \
            families with join and publish rules) are set in the config file only. With no \
            configuration at all the server runs the demo: namespaces room:*, ticker, \
            notifications:<user id>, realtime:*, public:*, online; no token verification (the \
            user_id connect param names the user); browser origins localhost and 127.0.0.1.
            """,
        version: version
    )

    @Option(
        help: ArgumentHelp("Config file, YAML or JSON (see README: Configuration). Default: $SWITCHBOARD_CONFIG; unset: none.", valueName: "path")
    )
    var config: String?

    @Option(help: "Address to listen on. Default: $SWITCHBOARD_HOST, the file's host, else 127.0.0.1.")
    var host: String?

    @Option(help: "Port to listen on (0 picks a free one). Default: $SWITCHBOARD_PORT, the file's port, else 4000.")
    var port: Int?

    @Option(
        help: "Log level: trace, debug, info, notice, warning, error, critical. Default: $SWITCHBOARD_LOG_LEVEL, the file's log_level, else info."
    )
    var logLevel: String?

    @Option(
        help:
            "Log format: text (one readable line per message) or json (one JSON object per line: timestamp, level, label, message, metadata). Default: $SWITCHBOARD_LOG_FORMAT, the file's log_format, else text."
    )
    var logFormat: String?

    @Option(
        help:
            "API key for the HTTP API (Authorization: Bearer <key>). Default: $SWITCHBOARD_API_KEY, the file's api_key, else a random key, logged once at start."
    )
    var apiKey: String?

    @Option(
        help:
            "Redis URL (redis://[[user]:password@]host[:port][/db]): nodes with the same Redis act as one. Default: $SWITCHBOARD_REDIS_URL, the file's redis_url; unset: one in-memory node."
    )
    var redis: String?

    @Option(
        name: .customLong("allowed-origin"),
        help: ArgumentHelp(
            "A browser origin allowed to connect (repeatable): https://app.example.com, //example.com:8080, //*.example.com, or * for any. Requests without Origin are always allowed. Default: $SWITCHBOARD_ALLOWED_ORIGINS, the file's allowed_origins, else localhost, 127.0.0.1 and [::1] on any port.",
            valueName: "origin"
        )
    )
    var allowedOrigins: [String] = []

    @Option(
        help:
            "JWT algorithm: HS256, RS256 or ES256. Default: $SWITCHBOARD_JWT_ALGORITHM, the file's jwt.algorithm, else HS256 for a secret and the public key's own type."
    )
    var jwtAlgorithm: String?

    @Option(
        help:
            "HS256 secret: connections are verified (token param, phoenix.js authToken or Authorization: Bearer). Prefer $SWITCHBOARD_JWT_SECRET (flags show in ps). Default: none (no verification)."
    )
    var jwtSecret: String?

    @Option(
        help: ArgumentHelp(
            "RS256/ES256 public key file (PEM). Default: $SWITCHBOARD_JWT_PUBLIC_KEY_FILE or $SWITCHBOARD_JWT_PUBLIC_KEY (PEM text), the file's jwt.public_key_file or jwt.public_key.",
            valueName: "path"
        )
    )
    var jwtPublicKeyFile: String?

    @Option(
        help:
            "The token claim listing the topic patterns its user may join (e.g. [\"chat:*\"]). Default: $SWITCHBOARD_JWT_TOPICS_CLAIM, the file's jwt.topics_claim, else channels."
    )
    var jwtTopicsClaim: String?

    @Flag(help: "Print the resolved configuration as JSON (secrets shown as \"(set)\") and exit.")
    var printConfig = false

    /// The flags not named after their setting's key (`--redis` sets `redis_url`).
    static let flagNames = ["redis_url": "--redis", "allowed_origins": "--allowed-origin"]

    /// The values the flags set, by setting key (an empty text counts as not given).
    var flagValues: [String: ConfigContent] {
        var values: [String: ConfigContent] = [:]
        func set(_ key: String, _ text: String?) {
            if let text, !text.isEmpty { values[key] = .string(text) }
        }
        set("host", host)
        set("port", port.map(String.init))
        set("log_level", logLevel)
        set("log_format", logFormat)
        set("api_key", apiKey)
        set("redis_url", redis)
        if !allowedOrigins.isEmpty { values["allowed_origins"] = .stringArray(allowedOrigins.flatMap { ServerConfiguration.parseList($0) }) }
        set("jwt.algorithm", jwtAlgorithm)
        set("jwt.secret", jwtSecret)
        set("jwt.public_key_file", jwtPublicKeyFile)
        set("jwt.topics_claim", jwtTopicsClaim)
        return values
    }

    /// Flags over environment over file over defaults.
    func resolveConfiguration(environment: [String: String]) throws(ConfigurationError) -> ServerConfiguration {
        let path = config ?? environment[ServerConfiguration.configFileVariable].flatMap { $0.isEmpty ? nil : $0 }
        let file = try path.map { (path) throws(ConfigurationError) -> ConfigFile in try ConfigFile.load(path: path) }
        return try ServerConfiguration.resolve(flags: flagValues, flagNames: Self.flagNames, environment: environment, file: file)
    }

    func run() async throws {
        let configuration: ServerConfiguration
        let access: ServerAccess
        do {
            configuration = try resolveConfiguration(environment: ProcessInfo.processInfo.environment)
            if printConfig {
                print(String(buffer: JSONWriter.buffer(configuration.summary)))
                return
            }
            access = try await ServerAccess.make(configuration)
        } catch {
            FileHandle.standardError.write(Data("switchboard: configuration error: \(error.message)\n".utf8))
            throw ExitCode(78)  // EX_CONFIG
        }

        let level = configuration.logLevel
        if configuration.logFormat == .json {
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
        var logger = Logger(label: "switchboard")
        logger.handler = RecentErrorsLogHandler(wrapping: logger.handler)  // the dashboard's recent errors
        logger.logLevel = level
        access.logStart(configuration, logger: logger)

        let key: String
        if let apiKey = configuration.apiKey, !apiKey.isEmpty {
            key = apiKey
        } else {
            key = HubAPI.generateKey()
            // Through the logger (stderr, flushed per line, either log format), not stdout: stdout
            // is block-buffered under systemd, Docker or `> log`, where a print shows only at exit.
            logger.warning(
                "no API key configured; generated one for this run (set a fixed one with --api-key, SWITCHBOARD_API_KEY or api_key in the config file)",
                metadata: ["switchboard.api_key": "\(key)"]
            )
        }
        var broker: RedisBroker?
        if let url = configuration.redisURL, !url.isEmpty {
            var redis = try RedisBroker.Configuration(url: url)
            redis.presenceLease = .seconds(configuration.presenceLeaseSeconds)
            broker = RedisBroker(configuration: redis, logger: logger)
        }
        let app = ServerApplication.makeApplication(
            host: configuration.host,
            port: configuration.port,
            apiKey: key,
            redis: broker,
            access: access,
            webhooks: configuration.webhooks,
            logger: logger
        )
        try await app.runService()
    }
}
