import Foundation
import Logging
import Yams

/// Reads a config file (YAML, or JSON, which YAML parsers read too) into a `ConfigurationLayer`.
///
/// Keys are snake_case; an unknown key is an error (a typo must not silently fall back to a
/// default). See the README's "Configuration" section for the format.
enum ConfigFile {
    /// Reads and parses the file at `path`.
    static func load(path: String) throws(ConfigurationError) -> ConfigurationLayer {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError("config file \(path): cannot read it (\(error.localizedDescription))")
        }
        return try parse(text, name: path)
    }

    /// Parses config file text; `name` prefixes error messages.
    static func parse(_ text: String, name: String = "config file") throws(ConfigurationError) -> ConfigurationLayer {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw ConfigurationError("\(name): not valid YAML or JSON: \(error)")
        }
        guard let root else { return ConfigurationLayer() }  // an empty file sets nothing
        var reader = Reader(name: name)
        return try reader.layer(root)
    }

    /// Walks the parsed document, with the path of each value for error messages.
    struct Reader {
        let name: String

        func fail(_ path: String, _ message: String) -> ConfigurationError {
            ConfigurationError("\(name): \(path): \(message)")
        }

        func object(_ value: Any, _ path: String, keys: Set<String>) throws(ConfigurationError) -> [String: Any] {
            guard let dictionary = value as? [String: Any] else {
                // Yams gives [AnyHashable: Any] for mappings whose keys are not all strings.
                throw fail(path, "expected a mapping of names to values")
            }
            if let unknown = dictionary.keys.filter({ !keys.contains($0) }).sorted().first {
                throw fail(path.isEmpty ? unknown : "\(path).\(unknown)", "unknown key (known: \(keys.sorted().joined(separator: ", ")))")
            }
            return dictionary
        }

        func string(_ value: Any?, _ path: String) throws(ConfigurationError) -> String? {
            guard let value, !(value is NSNull) else { return nil }
            if let string = value as? String { return string }
            if let int = value as? Int { return String(int) }  // e.g. an all-digit API key
            throw fail(path, "expected a string")
        }

        func int(_ value: Any?, _ path: String) throws(ConfigurationError) -> Int? {
            guard let value, !(value is NSNull) else { return nil }
            if let int = value as? Int { return int }
            if let string = value as? String, let int = Int(string) { return int }
            throw fail(path, "expected an integer")
        }

        func bool(_ value: Any?, _ path: String) throws(ConfigurationError) -> Bool? {
            guard let value, !(value is NSNull) else { return nil }
            if let bool = value as? Bool { return bool }
            throw fail(path, "expected true or false")
        }

        func strings(_ value: Any?, _ path: String) throws(ConfigurationError) -> [String]? {
            guard let value, !(value is NSNull) else { return nil }
            if let string = value as? String { return ServerConfiguration.parseList(string) }
            guard let array = value as? [Any] else { throw fail(path, "expected a list of strings") }
            var result: [String] = []
            for (index, item) in array.enumerated() {
                guard let string = item as? String else { throw fail("\(path)[\(index)]", "expected a string") }
                result.append(string)
            }
            return result
        }

        func choice<T>(_ value: Any?, _ path: String, _ make: (String) -> T?, _ allowed: [String]) throws(ConfigurationError) -> T? {
            guard let text = try string(value, path) else { return nil }
            guard let result = make(text) else {
                throw fail(path, "\(text) is not one of \(allowed.joined(separator: ", "))")
            }
            return result
        }

        mutating func layer(_ root: Any) throws(ConfigurationError) -> ConfigurationLayer {
            let top = try object(root, "", keys: ["host", "port", "log_level", "log_format", "api_key", "redis_url", "allowed_origins", "jwt", "namespaces"])
            var layer = ConfigurationLayer()
            layer.host = try string(top["host"], "host")
            if let port = try int(top["port"], "port") {
                guard (0...65535).contains(port) else { throw fail("port", "\(port) is not a port (0 to 65535)") }
                layer.port = port
            }
            layer.logLevel = try choice(top["log_level"], "log_level", { Logger.Level(rawValue: $0.lowercased()) }, Logger.Level.allCases.map(\.rawValue))
            layer.logFormat = try choice(top["log_format"], "log_format", { ServerConfiguration.LogFormat(rawValue: $0.lowercased()) }, ServerConfiguration.LogFormat.allCases.map(\.rawValue))
            layer.apiKey = try string(top["api_key"], "api_key")
            layer.redisURL = try string(top["redis_url"], "redis_url")
            layer.allowedOrigins = try strings(top["allowed_origins"], "allowed_origins")
            if let jwtValue = top["jwt"], !(jwtValue is NSNull) {
                let jwt = try object(jwtValue, "jwt", keys: ["algorithm", "secret", "public_key", "public_key_file", "topics_claim", "require_exp", "allow_anonymous", "leeway"])
                layer.jwtAlgorithm = try choice(jwt["algorithm"], "jwt.algorithm", { JWTConfiguration.Algorithm(rawValue: $0.uppercased()) }, JWTConfiguration.Algorithm.allCases.map(\.rawValue))
                layer.jwtSecret = try string(jwt["secret"], "jwt.secret")
                layer.jwtPublicKey = try string(jwt["public_key"], "jwt.public_key")
                layer.jwtPublicKeyFile = try string(jwt["public_key_file"], "jwt.public_key_file")
                layer.jwtTopicsClaim = try string(jwt["topics_claim"], "jwt.topics_claim")
                layer.jwtRequireExpiry = try bool(jwt["require_exp"], "jwt.require_exp")
                layer.jwtAllowAnonymous = try bool(jwt["allow_anonymous"], "jwt.allow_anonymous")
                layer.jwtLeewaySeconds = try int(jwt["leeway"], "jwt.leeway")
            }
            if let namespacesValue = top["namespaces"], !(namespacesValue is NSNull) {
                layer.namespaces = try namespaces(namespacesValue)
            }
            return layer
        }

        /// `namespaces` is a mapping from pattern to options, or a list of options with `pattern`.
        func namespaces(_ value: Any) throws(ConfigurationError) -> [Namespace] {
            var entries: [(pattern: String, options: Any, path: String)] = []
            if let mapping = value as? [String: Any] {
                for (pattern, options) in mapping.sorted(by: { $0.key < $1.key }) {
                    entries.append((pattern, options, "namespaces.\(pattern)"))
                }
            } else if let list = value as? [Any] {
                for (index, item) in list.enumerated() {
                    let path = "namespaces[\(index)]"
                    guard let pattern = try string((item as? [String: Any])?["pattern"], "\(path).pattern") else {
                        throw fail(path, "a namespace in a list needs a pattern")
                    }
                    entries.append((pattern, item, path))
                }
            } else {
                throw fail("namespaces", "expected a mapping of topic patterns to options")
            }
            var result: [Namespace] = []
            var seen = Set<String>()
            for (rawPattern, optionsValue, path) in entries {
                let pattern = Namespace.normalize(pattern: rawPattern)
                guard !pattern.isEmpty, pattern.firstIndex(of: "*").map({ $0 == pattern.index(before: pattern.endIndex) }) ?? true else {
                    throw fail(path, "a pattern is an exact topic (ticker) or a prefix ending in * or : (chat:*)")
                }
                guard seen.insert(pattern).inserted else { throw fail(path, "pattern \(pattern) is given twice") }
                var namespace = Namespace(pattern: pattern)
                if optionsValue is NSNull {
                    result.append(namespace)
                    continue
                }
                let options = try object(optionsValue, path, keys: ["pattern", "channel", "join", "publish", "presence", "history", "slow_consumer"])
                if let behaviour = try choice(options["channel"], "\(path).channel", { Namespace.Behaviour(rawValue: $0.lowercased()) }, Namespace.Behaviour.allCases.map(\.rawValue)) {
                    namespace.behaviour = behaviour
                }
                if let join = try choice(options["join"], "\(path).join", { Namespace.JoinRule(rawValue: $0.lowercased()) }, Namespace.JoinRule.allCases.map(\.rawValue)) {
                    namespace.join = join
                }
                if namespace.join == .owner, !namespace.isPrefix {
                    throw fail("\(path).join", "owner needs a prefix pattern (the user id is the topic's suffix)")
                }
                if let publish = try bool(options["publish"], "\(path).publish") { namespace.clientPublish = publish }
                if let presence = try bool(options["presence"], "\(path).presence") { namespace.presence = presence }
                if let historyValue = options["history"], !(historyValue is NSNull) {
                    let history = try object(historyValue, "\(path).history", keys: ["size", "ttl"])
                    if let size = try int(history["size"], "\(path).history.size") { namespace.historySize = size }
                    if let ttl = try int(history["ttl"], "\(path).history.ttl") { namespace.historyTTL = ttl }
                }
                if let policy = try choice(options["slow_consumer"], "\(path).slow_consumer", { Namespace.SlowConsumerPolicy(rawValue: $0.lowercased()) }, Namespace.SlowConsumerPolicy.allCases.map(\.rawValue)) {
                    namespace.slowConsumer = policy
                }
                result.append(namespace)
            }
            return result
        }
    }
}
