import Foundation
import Logging

/// The values one configuration source sets (a config file, the environment, the flags); `nil`
/// leaves the value of the layers below. `ServerConfiguration.resolve` stacks them.
struct ConfigurationLayer: Sendable, Equatable {
    var host: String?
    var port: Int?
    var logLevel: Logger.Level?
    var logFormat: ServerConfiguration.LogFormat?
    var apiKey: String?
    var redisURL: String?
    var allowedOrigins: [String]?
    var jwtAlgorithm: JWTConfiguration.Algorithm?
    var jwtSecret: String?
    var jwtPublicKey: String?
    var jwtPublicKeyFile: String?
    var jwtTopicsClaim: String?
    var jwtRequireExpiry: Bool?
    var jwtAllowAnonymous: Bool?
    var jwtLeewaySeconds: Int?
    var namespaces: [Namespace]?

    /// Applies this layer's values over `configuration`.
    func apply(to configuration: inout ServerConfiguration) {
        if let host { configuration.host = host }
        if let port { configuration.port = port }
        if let logLevel { configuration.logLevel = logLevel }
        if let logFormat { configuration.logFormat = logFormat }
        if let apiKey { configuration.apiKey = apiKey }
        if let redisURL { configuration.redisURL = redisURL }
        if let allowedOrigins { configuration.allowedOrigins = allowedOrigins }
        if let jwtAlgorithm { configuration.jwt.algorithm = jwtAlgorithm }
        // A layer that names a key replaces the keys of the layers below: one key is in force.
        if jwtSecret != nil || jwtPublicKey != nil || jwtPublicKeyFile != nil {
            configuration.jwt.secret = jwtSecret
            configuration.jwt.publicKey = jwtPublicKey
            configuration.jwt.publicKeyFile = jwtPublicKeyFile
        }
        if let jwtTopicsClaim { configuration.jwt.topicsClaim = jwtTopicsClaim }
        if let jwtRequireExpiry { configuration.jwt.requireExpiry = jwtRequireExpiry }
        if let jwtAllowAnonymous { configuration.jwt.allowAnonymous = jwtAllowAnonymous }
        if let jwtLeewaySeconds { configuration.jwt.leewaySeconds = jwtLeewaySeconds }
        if let namespaces { configuration.namespaces = namespaces }
    }
}

extension ServerConfiguration {
    /// The names of the environment variables, `SWITCHBOARD_*`.
    enum EnvironmentKey {
        static let config = "SWITCHBOARD_CONFIG"
        static let host = "SWITCHBOARD_HOST"
        static let port = "SWITCHBOARD_PORT"
        static let logLevel = "SWITCHBOARD_LOG_LEVEL"
        static let logFormat = "SWITCHBOARD_LOG_FORMAT"
        static let apiKey = "SWITCHBOARD_API_KEY"
        static let redisURL = "SWITCHBOARD_REDIS_URL"
        static let allowedOrigins = "SWITCHBOARD_ALLOWED_ORIGINS"
        static let jwtAlgorithm = "SWITCHBOARD_JWT_ALGORITHM"
        static let jwtSecret = "SWITCHBOARD_JWT_SECRET"
        static let jwtPublicKey = "SWITCHBOARD_JWT_PUBLIC_KEY"
        static let jwtPublicKeyFile = "SWITCHBOARD_JWT_PUBLIC_KEY_FILE"
        static let jwtTopicsClaim = "SWITCHBOARD_JWT_TOPICS_CLAIM"
    }

    /// Stacks the sources: `flags` over `environment` over `file` over the defaults.
    static func resolve(file: ConfigurationLayer?, environment: ConfigurationLayer, flags: ConfigurationLayer) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        file?.apply(to: &configuration)
        environment.apply(to: &configuration)
        flags.apply(to: &configuration)
        return configuration
    }

    /// The layer the `SWITCHBOARD_*` variables set (empty values count as unset).
    static func environmentLayer(_ environment: [String: String]) throws(ConfigurationError) -> ConfigurationLayer {
        func value(_ key: String) -> String? {
            guard let value = environment[key], !value.isEmpty else { return nil }
            return value
        }
        var layer = ConfigurationLayer()
        layer.host = value(EnvironmentKey.host)
        if let port = value(EnvironmentKey.port) {
            layer.port = try parsePort(port, source: EnvironmentKey.port)
        }
        if let level = value(EnvironmentKey.logLevel) {
            layer.logLevel = try parseLogLevel(level, source: EnvironmentKey.logLevel)
        }
        if let format = value(EnvironmentKey.logFormat) {
            layer.logFormat = try parseLogFormat(format, source: EnvironmentKey.logFormat)
        }
        layer.apiKey = value(EnvironmentKey.apiKey)
        layer.redisURL = value(EnvironmentKey.redisURL)
        layer.allowedOrigins = value(EnvironmentKey.allowedOrigins).map { parseList($0) }
        if let algorithm = value(EnvironmentKey.jwtAlgorithm) {
            layer.jwtAlgorithm = try parseAlgorithm(algorithm, source: EnvironmentKey.jwtAlgorithm)
        }
        layer.jwtSecret = value(EnvironmentKey.jwtSecret)
        layer.jwtPublicKey = value(EnvironmentKey.jwtPublicKey)
        layer.jwtPublicKeyFile = value(EnvironmentKey.jwtPublicKeyFile)
        layer.jwtTopicsClaim = value(EnvironmentKey.jwtTopicsClaim)
        return layer
    }

    static func parsePort(_ text: String, source: String) throws(ConfigurationError) -> Int {
        guard let port = Int(text.trimmingCharacters(in: .whitespaces)), (0...65535).contains(port) else {
            throw ConfigurationError("\(source): \(text) is not a port (0 to 65535)")
        }
        return port
    }

    static func parseLogLevel(_ text: String, source: String) throws(ConfigurationError) -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ConfigurationError("\(source): unknown log level \(text) (trace, debug, info, notice, warning, error, critical)")
        }
        return level
    }

    static func parseLogFormat(_ text: String, source: String) throws(ConfigurationError) -> LogFormat {
        guard let format = LogFormat(rawValue: text.lowercased()) else {
            throw ConfigurationError("\(source): unknown log format \(text) (text, json)")
        }
        return format
    }

    static func parseAlgorithm(_ text: String, source: String) throws(ConfigurationError) -> JWTConfiguration.Algorithm {
        guard let algorithm = JWTConfiguration.Algorithm(rawValue: text.uppercased()) else {
            throw ConfigurationError("\(source): unsupported JWT algorithm \(text) (HS256, RS256, ES256)")
        }
        return algorithm
    }

    /// `a, b,c` → `["a", "b", "c"]`.
    static func parseList(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

/// A configuration that cannot be used: the message names the source and the value.
struct ConfigurationError: Error, Equatable, CustomStringConvertible {
    let message: String

    init(_ message: String) {
        self.message = message
    }

    var description: String { message }
}
