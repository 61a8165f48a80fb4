import Foundation
import Logging
import Switchboard
import Testing

@testable import SwitchboardServer

@Suite("Configuration: flags over environment over file over defaults")
struct ConfigurationTests {
    /// Writes `text` to a new temporary file and returns its path.
    func temporaryFile(_ text: String, suffix: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-config-\(UUID().uuidString)\(suffix)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("no source at all gives the defaults (the demo: built-in namespaces, no JWT, local origins)")
    func defaults() throws {
        let command = try SwitchboardCommand.parse([])
        let configuration = try command.resolveConfiguration(environment: [:])
        #expect(configuration == ServerConfiguration())
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 4000)
        #expect(configuration.logLevel == .info)
        #expect(configuration.logFormat == .text)
        #expect(configuration.namespaces == nil)
        #expect(configuration.jwt.isEnabled == false)
    }

    @Test("a flag beats the environment, which beats the file, which beats the default")
    func precedence() throws {
        let file = try temporaryFile(
            """
            host: 127.0.0.2
            port: 5001
            log_level: debug
            log_format: json
            api_key: from-file
            """,
            suffix: ".yaml"
        )
        defer { try? FileManager.default.removeItem(atPath: file) }
        let environment = [
            "SWITCHBOARD_PORT": "5002", "SWITCHBOARD_LOG_LEVEL": "warning", "SWITCHBOARD_API_KEY": "from-env", "SWITCHBOARD_CONFIG": file,
        ]
        let command = try SwitchboardCommand.parse(["--port", "5003"])
        let configuration = try command.resolveConfiguration(environment: environment)
        #expect(configuration.port == 5003)  // flag
        #expect(configuration.logLevel == .warning)  // environment over file
        #expect(configuration.apiKey == "from-env")
        #expect(configuration.host == "127.0.0.2")  // file over default
        #expect(configuration.logFormat == .json)
        #expect(configuration.configFile == file)
        #expect(configuration.redisURL == nil)  // default
    }

    @Test("--config beats $SWITCHBOARD_CONFIG; JSON files are read too")
    func configFlagAndJSON() throws {
        let yaml = try temporaryFile("port: 6001\n", suffix: ".yaml")
        let json = try temporaryFile(#"{"port": 6002, "allowed_origins": ["https://app.example.com"]}"#, suffix: ".json")
        defer {
            try? FileManager.default.removeItem(atPath: yaml)
            try? FileManager.default.removeItem(atPath: json)
        }
        let configuration = try SwitchboardCommand.parse(["--config", json]).resolveConfiguration(environment: ["SWITCHBOARD_CONFIG": yaml])
        #expect(configuration.port == 6002)
        #expect(configuration.allowedOrigins == ["https://app.example.com"])
    }

    @Test("repeated --allowed-origin flags replace the environment's comma-separated list")
    func origins() throws {
        let fromEnvironment = try SwitchboardCommand.parse([]).resolveConfiguration(environment: [
            "SWITCHBOARD_ALLOWED_ORIGINS": "https://a.test, //b.test:8080"
        ])
        #expect(fromEnvironment.allowedOrigins == ["https://a.test", "//b.test:8080"])
        let fromFlags = try SwitchboardCommand.parse(["--allowed-origin", "https://c.test", "--allowed-origin", "//*.d.test"]).resolveConfiguration(
            environment: ["SWITCHBOARD_ALLOWED_ORIGINS": "https://a.test"])
        #expect(fromFlags.allowedOrigins == ["https://c.test", "//*.d.test"])
    }

    @Test("a JWT key given by a higher layer replaces the key of a lower one")
    func jwtKeyLayers() throws {
        let file = try temporaryFile("jwt:\n  public_key_file: /nonexistent.pem\n  topics_claim: rooms\n", suffix: ".yml")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let configuration = try SwitchboardCommand.parse(["--config", file]).resolveConfiguration(environment: ["SWITCHBOARD_JWT_SECRET": "s3cret"])
        #expect(configuration.jwt.secret == "s3cret")
        #expect(configuration.jwt.publicKeyFile == nil)
        #expect(configuration.jwt.topicsClaim == "rooms")
    }

    @Test(
        "bad values name their source",
        arguments: [
            (["--port", "70000"], [String: String](), "--port"),
            (["--log-format", "xml"], [:], "--log-format"),
            ([], ["SWITCHBOARD_JWT_LEEWAY": "soon"], "SWITCHBOARD_JWT_LEEWAY"),
            ([], ["SWITCHBOARD_PORT": "http"], "SWITCHBOARD_PORT"),
            (["--port", "4001"], ["SWITCHBOARD_PORT": "http"], "SWITCHBOARD_PORT"),  // hidden by the flag, still a mistake
            ([], ["SWITCHBOARD_LOG_LEVEL": "loud"], "SWITCHBOARD_LOG_LEVEL"),
            ([], ["SWITCHBOARD_JWT_ALGORITHM": "none"], "SWITCHBOARD_JWT_ALGORITHM"),
            ([], ["SWITCHBOARD_CONFIG": "/nonexistent/switchboard.yaml"], "/nonexistent/switchboard.yaml"),
        ]
    )
    func badValues(arguments: [String], environment: [String: String], source: String) throws {
        let command = try SwitchboardCommand.parse(arguments)
        let error = #expect(throws: ConfigurationError.self) { try command.resolveConfiguration(environment: environment) }
        #expect(error?.message.contains(source) == true, "\(error?.message ?? "")")
    }
}

@Suite("Settings: one key names the file key, the variable and the flag")
struct SettingsTests {
    @Test("every setting has its SWITCHBOARD_* variable, named after its file key")
    func everySettingHasAVariable() throws {
        let environment = [
            "SWITCHBOARD_JWT_REQUIRE_EXP": "false", "SWITCHBOARD_JWT_ALLOW_ANONYMOUS": "FALSE", "SWITCHBOARD_JWT_LEEWAY": "7",
            "SWITCHBOARD_JWT_PUBLIC_KEY_FILE": "/k.pem", "SWITCHBOARD_LOG_FORMAT": "json", "SWITCHBOARD_REDIS_URL": "redis://127.0.0.1:1",
        ]
        let configuration = try SwitchboardCommand.parse([]).resolveConfiguration(environment: environment)
        #expect(configuration.jwt.requireExpiry == false)
        #expect(configuration.jwt.allowAnonymous == false)
        #expect(configuration.jwt.leewaySeconds == 7)
        #expect(configuration.jwt.publicKeyFile == "/k.pem")
        #expect(configuration.logFormat == .json)
        #expect(configuration.redisURL == "redis://127.0.0.1:1")
        #expect(SettingsReader.environmentName(of: "jwt.public_key_file") == "SWITCHBOARD_JWT_PUBLIC_KEY_FILE")
    }

    @Test("an empty variable counts as unset: the file's value holds")
    func emptyVariable() throws {
        let settings = SettingsReader(flags: [:], environment: ["SWITCHBOARD_PORT": ""], file: ("f.yaml", ["port": .string("4100")]))
        let configuration = try ServerConfiguration(reading: settings)
        #expect(configuration.port == 4100)
    }

    @Test("the reader says which source answered, and the file's unknown keys are the ones not read")
    func sourcesAndKeys() throws {
        let settings = SettingsReader(
            flags: ["host": .string("0.0.0.0")],
            flagNames: [:],
            environment: ["SWITCHBOARD_PORT": "4200"],
            file: ("f.yaml", ["port": .string("1"), "log_level": .string("debug")])
        )
        #expect(try settings.text("host")?.source == .flags(names: [:]))
        #expect(try settings.text("port")?.source == .environment)
        #expect(try settings.text("log_level")?.source == .file("f.yaml"))
        #expect(try settings.text("api_key") == nil)
        #expect(settings.keysRead == ["host", "port", "log_level", "api_key"])
        #expect(SettingsReader.Source.flags(names: ["redis_url": "--redis"]).name(of: "redis_url") == "--redis")
        #expect(SettingsReader.Source.flags(names: [:]).name(of: "jwt.topics_claim") == "--jwt-topics-claim")
    }
}

@Suite("Config file")
struct ConfigFileTests {
    /// The configuration that `text`, as the only source, gives.
    func resolve(_ text: String) throws(ConfigurationError) -> ServerConfiguration {
        try ServerConfiguration.resolve(flags: [:], flagNames: [:], environment: [:], file: ConfigFile.parse(text, name: "test.yaml"))
    }

    @Test("every key of the format is read")
    func fullFile() throws {
        let layer = try resolve(
            """
            host: 0.0.0.0
            port: 4100
            log_level: notice
            log_format: json
            api_key: k
            redis_url: redis://127.0.0.1:6379
            allowed_origins: [https://app.example.com, //localhost]
            jwt:
              algorithm: ES256
              public_key_file: /etc/switchboard/jwt.pem
              topics_claim: topics
              require_exp: false
              allow_anonymous: false
              leeway: 5
            namespaces:
              "chat:":
                channel: chat
                join: authenticated
                publish: true
              "notifications:*":
                channel: notifications
                join: owner
              "feed:*":
                join: token
                publish: true
                presence: true
                history: {size: 100, ttl: 3600}
                slow_consumer: drop_oldest
              status:
            """
        )
        #expect(layer.host == "0.0.0.0")
        #expect(layer.port == 4100)
        #expect(layer.logLevel == .notice)
        #expect(layer.logFormat == .json)
        #expect(layer.apiKey == "k")
        #expect(layer.redisURL == "redis://127.0.0.1:6379")
        #expect(layer.allowedOrigins == ["https://app.example.com", "//localhost"])
        #expect(layer.jwt.algorithm == .es256)
        #expect(layer.jwt.publicKeyFile == "/etc/switchboard/jwt.pem")
        #expect(layer.jwt.topicsClaim == "topics")
        #expect(layer.jwt.requireExpiry == false)
        #expect(layer.jwt.allowAnonymous == false)
        #expect(layer.jwt.leewaySeconds == 5)
        let namespaces = try #require(layer.namespaces)
        #expect(
            namespaces == [
                Namespace(pattern: "chat:*", behaviour: .chat, join: .authenticated, clientPublish: true),
                Namespace(
                    pattern: "feed:*",
                    behaviour: .generic,
                    join: .token,
                    clientPublish: true,
                    presence: .full,
                    historySize: 100,
                    historyTTL: 3600,
                    slowConsumer: .dropOldest
                ),
                Namespace(pattern: "notifications:*", behaviour: .notifications, join: .owner, clientPublish: false),
                Namespace(pattern: "status"),
            ]
        )
    }

    @Test("presence: true, false or count, with presence_grace in seconds; the hub's policy follows each topic's namespace")
    func presence() throws {
        let layer = try resolve(
            """
            namespaces:
              "lobby:*": {presence: true, presence_grace: 2.5}
              "stats:*": {presence: count}
              "news:*": {presence: false}
              "plain:*": {}
            """
        )
        let namespaces = try #require(layer.namespaces)
        #expect(namespaces.map(\.presence) == [.full, .off, .off, .count])
        #expect(namespaces.first { $0.pattern == "lobby:*" }?.presenceGrace == 2.5)
        let access = ServerAccess(namespaces: NamespaceTable(namespaces), verifier: nil, allowAnonymous: true, originPolicy: .any)
        let policy = access.presenceConfiguration.policy
        #expect(policy("lobby:1") == Presence.TopicPolicy(countOnly: false, grace: .milliseconds(2500)))
        #expect(policy("stats:1") == Presence.TopicPolicy(countOnly: true, grace: .zero))
        #expect(policy("news:1") == Presence.TopicPolicy())
        #expect(policy("elsewhere") == Presence.TopicPolicy())
    }

    @Test("webhooks: url, secret, namespace patterns (normalized as under namespaces:), event types, queue size, timeout")
    func webhooks() throws {
        let layer = try resolve(
            """
            webhooks:
              - url: https://hooks.example.test/presence
                secret: s3cret
                namespaces: ["lobby:*", "inbox:"]
                events: [member.joined, topic.vacated]
                queue_size: 500
                timeout_seconds: 2
              - {url: "http://127.0.0.1:9000/", secret: other}
            """
        )
        var first = Webhook(url: "https://hooks.example.test/presence", secret: "s3cret")
        first.namespaces = ["lobby:*", "inbox:*"]
        first.events = [.memberJoined, .topicVacated]
        first.queueSize = 500
        first.timeoutSeconds = 2
        #expect(layer.webhooks == [first, Webhook(url: "http://127.0.0.1:9000/", secret: "other")])
        #expect(first.wants(.memberJoined, namespace: "lobby:*"))
        #expect(!first.wants(.memberLeft, namespace: "lobby:*"))
        #expect(!first.wants(.memberJoined, namespace: "other:*"))
        #expect(!first.wants(.memberJoined, namespace: nil))
        #expect(layer.webhooks[1].wants(.memberLeft, namespace: nil))
    }

    @Test("JSON, with namespaces as a list")
    func jsonList() throws {
        let layer = try resolve(#"{"namespaces": [{"pattern": "chat:*", "publish": true}, {"pattern": "ticker", "channel": "ticker"}]}"#)
        #expect(layer.namespaces == [Namespace(pattern: "chat:*", clientPublish: true), Namespace(pattern: "ticker", behaviour: .ticker)])
    }

    @Test("an empty file sets nothing")
    func empty() throws {
        var expected = ServerConfiguration()
        expected.configFile = "test.yaml"
        #expect(try resolve("") == expected)
    }

    @Test(
        "mistakes are errors with the key's path",
        arguments: [
            ("prot: 4000", "prot"),
            (
                "prot: 4000",
                "(known: allowed_origins, api_key, host, jwt, log_format, log_level, namespaces, port, presence_lease_seconds, redis_url, webhooks)"
            ),
            ("port: many", "port"),
            ("log_format: xml", "log_format"),
            ("jwt:\n  secrte: x", "jwt.secrte"),
            ("namespaces:\n  \"chat:*\":\n    join: everyone", "namespaces.chat:*.join"),
            ("namespaces:\n  \"chat:*\":\n    publsh: true", "namespaces.chat:*.publsh"),
            ("namespaces:\n  ticker:\n    join: owner", "namespaces.ticker.join"),
            ("namespaces:\n  \"a*b\": {}", "namespaces.a*b"),
            ("port: [", "not valid YAML"),
            ("port: [4000, 4001]", "test.yaml: port: expected a single value"),
            ("jwt: HS256", "test.yaml: jwt: expected a mapping"),
            ("jwt:\n  require_exp: sometimes", "test.yaml: jwt.require_exp: expected true or false"),
            ("allowed_origins: [{a: 1}]", "allowed_origins[0]"),
            ("namespaces:\n  \"lobby:*\":\n    presence: sometimes", "namespaces.lobby:*.presence: expected true, false or count"),
            ("namespaces:\n  \"lobby:*\":\n    presence: 3", "namespaces.lobby:*.presence"),
            ("namespaces:\n  \"lobby:*\":\n    presence_grace: soon", "namespaces.lobby:*.presence_grace: expected a number of seconds"),
            ("namespaces:\n  \"lobby:*\":\n    presence_grace: -1", "namespaces.lobby:*.presence_grace: expected 0 to 3600 seconds"),
            ("webhooks: {url: x}", "webhooks: expected a list of receivers"),
            ("webhooks:\n  - {secret: s}", "webhooks[0]: a webhook needs a url"),
            ("webhooks:\n  - {url: ftp://h/x, secret: s}", "webhooks[0].url: expected an http:// or https:// URL"),
            ("webhooks:\n  - {url: http://h/x}", "webhooks[0]: a webhook needs a secret"),
            ("webhooks:\n  - {url: http://h/x, secret: s, events: [member.joined, member.moved]}", "webhooks[0].events: member.moved is not one of"),
            ("webhooks:\n  - {url: http://h/x, secret: s, namespaces: lobby}", "webhooks[0].namespaces: expected a list of strings"),
            ("webhooks:\n  - {url: http://h/x, secret: s, queue_size: 0}", "webhooks[0].queue_size: expected 1 to 1000000 events"),
            ("webhooks:\n  - {url: http://h/x, secret: s, timeout_seconds: 0}", "webhooks[0].timeout_seconds: expected 1 to 300 seconds"),
            ("webhooks:\n  - {url: http://h/x, secret: s, retries: 3}", "webhooks[0].retries: unknown key"),
        ]
    )
    func mistakes(text: String, expected: String) throws {
        let error = #expect(throws: ConfigurationError.self) { try resolve(text) }
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
    }
}
