import Configuration
import Foundation
import Logging

extension ServerConfiguration {
    /// The settings, each read once through `settings` (flags over environment over file) over
    /// the defaults. One line a setting: the key names the file key, the environment variable and
    /// (unless the command says otherwise) the flag.
    init(reading settings: SettingsReader) throws(ConfigurationError) {
        self.init()
        try settings.read("host", into: &host) { text, _ in text }
        try settings.read("port", into: &port, Self.parsePort)
        try settings.read("log_level", into: &logLevel, Self.parseLogLevel)
        try settings.read("log_format", into: &logFormat, Self.parseLogFormat)
        try settings.read("api_key", into: &apiKey) { text, _ in text }
        try settings.read("redis_url", into: &redisURL) { text, _ in text }
        try settings.read("presence_lease_seconds", into: &presenceLeaseSeconds, Self.parsePositiveInt)
        allowedOrigins = try settings.list("allowed_origins")?.value
        try settings.read("jwt.algorithm", into: &jwt.algorithm, Self.parseAlgorithm)
        try readJWTKey(settings)
        try settings.read("jwt.topics_claim", into: &jwt.topicsClaim) { text, _ in text }
        try settings.read("jwt.require_exp", into: &jwt.requireExpiry, Self.parseBool)
        try settings.read("jwt.allow_anonymous", into: &jwt.allowAnonymous, Self.parseBool)
        try settings.read("jwt.leeway", into: &jwt.leewaySeconds, Self.parseInt)
    }

    /// The keys of JWT verification: a source that names one replaces the keys of the sources
    /// below it, so that one key is in force (a secret in the environment is not joined by a
    /// public key file from the config file).
    private mutating func readJWTKey(_ settings: SettingsReader) throws(ConfigurationError) {
        let keys = ["jwt.secret", "jwt.public_key", "jwt.public_key_file"]
        var found: [String: (value: String, source: SettingsReader.Source)] = [:]
        for key in keys {
            found[key] = try settings.text(key)
        }
        guard let top = found.values.map(\.source.precedence).min() else { return }
        func value(_ key: String) -> String? {
            found[key].flatMap { $0.source.precedence == top ? $0.value : nil }
        }
        jwt.secret = value("jwt.secret")
        jwt.publicKey = value("jwt.public_key")
        jwt.publicKeyFile = value("jwt.public_key_file")
    }

    /// Reads the settings from the three sources (`flags` over `environment` over `file`), checks
    /// the file's keys against those read, and takes the file's namespaces.
    static func resolve(
        flags: [String: ConfigContent],
        flagNames: [String: String],
        environment: [String: String],
        file: ConfigFile?
    ) throws(ConfigurationError) -> ServerConfiguration {
        let settings = SettingsReader(flags: flags, flagNames: flagNames, environment: environment, file: file.map { ($0.path, $0.values) })
        var configuration = try ServerConfiguration(reading: settings)
        try file?.checkKeys(known: settings.keysRead)
        configuration.namespaces = file?.namespaces
        configuration.webhooks = file?.webhooks ?? []
        configuration.configFile = file?.path
        return configuration
    }

    /// The variable that names the config file (the other variables follow from their keys).
    static let configFileVariable = "SWITCHBOARD_CONFIG"

    static func parsePort(_ text: String, source: String) throws(ConfigurationError) -> Int {
        guard let port = Int(text.trimmingCharacters(in: .whitespaces)), (0...65535).contains(port) else {
            throw ConfigurationError("\(source): \(text) is not a port (0 to 65535)")
        }
        return port
    }

    static func parseInt(_ text: String, source: String) throws(ConfigurationError) -> Int {
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError("\(source): expected an integer, not \(text)")
        }
        return value
    }

    static func parsePositiveInt(_ text: String, source: String) throws(ConfigurationError) -> Int {
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value > 0 else {
            throw ConfigurationError("\(source): expected a positive integer, not \(text)")
        }
        return value
    }

    static func parseBool(_ text: String, source: String) throws(ConfigurationError) -> Bool {
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true": return true
        case "false": return false
        default: throw ConfigurationError("\(source): expected true or false, not \(text)")
        }
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
