import Configuration
import Foundation
import Logging
import Switchboard
import Yams

/// A config file (YAML, or JSON, which YAML parsers read too): its settings, which `SettingsReader`
/// serves as the lowest of its sources, and its namespaces (topic families with their options,
/// which only a file can set).
///
/// Keys are snake_case; an unknown key is an error (a typo must not silently fall back to a
/// default): `checkKeys` compares the file's keys with the keys the server reads. See the
/// README's "Configuration" section for the format.
struct ConfigFile {
    /// The file's path (or a name for text not read from a file), which error messages start with.
    let path: String
    /// The settings by key path (`port`, `jwt.secret`): text, or a list of text.
    var values: [String: ConfigContent] = [:]
    /// The namespaces; nil when the file has none (the built-in set applies).
    var namespaces: [Namespace]?
    /// The receivers of presence lifecycle events (`webhooks`, a list).
    var webhooks: [Webhook] = []

    init(path: String) {
        self.path = path
    }

    /// Reads and parses the file at `path`.
    static func load(path: String) throws(ConfigurationError) -> ConfigFile {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError("config file \(path): cannot read it (\(error.localizedDescription))")
        }
        return try parse(text, name: path)
    }

    /// Parses config file text; `name` prefixes error messages.
    static func parse(_ text: String, name: String = "config file") throws(ConfigurationError) -> ConfigFile {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw ConfigurationError("\(name): not valid YAML or JSON: \(error)")
        }
        guard let root else { return ConfigFile(path: name) }  // an empty file sets nothing
        return try Reader(name: name).contents(root)
    }

    /// An error for the first key of the file that the server did not read (`known`: the keys it
    /// read, from `SettingsReader.keysRead`).
    func checkKeys(known: Set<String>) throws(ConfigurationError) {
        for key in values.keys.sorted() where !known.contains(key) {
            if known.contains(where: { $0.hasPrefix(key + ".") }) {
                throw ConfigurationError("\(path): \(key): expected a mapping of names to values")
            }
            // The names beside the unknown one: the known keys under the same parent, and groups.
            let parent = key.split(separator: ".").dropLast().joined(separator: ".")
            let prefix = parent.isEmpty ? "" : parent + "."
            var names = Set(
                known.compactMap { candidate in
                    candidate.hasPrefix(prefix) ? candidate.dropFirst(prefix.count).split(separator: ".").first.map(String.init) : nil
                }
            )
            if parent.isEmpty { names.formUnion(["namespaces", "webhooks"]) }
            let listed = Array(names)
            throw ConfigurationError("\(path): \(key): unknown key (known: \(listed.sorted().joined(separator: ", ")))")
        }
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

        /// An integer within `range` (`unit` names what it counts, for the error).
        func int(_ value: Any?, _ path: String, in range: ClosedRange<Int>, _ unit: String) throws(ConfigurationError) -> Int? {
            guard let number = try int(value, path) else { return nil }
            guard range.contains(number) else { throw fail(path, "expected \(range.lowerBound) to \(range.upperBound) \(unit)") }
            return number
        }

        func bool(_ value: Any?, _ path: String) throws(ConfigurationError) -> Bool? {
            guard let value, !(value is NSNull) else { return nil }
            if let bool = value as? Bool { return bool }
            throw fail(path, "expected true or false")
        }

        func choice<T>(_ value: Any?, _ path: String, _ make: (String) -> T?, _ allowed: [String]) throws(ConfigurationError) -> T? {
            guard let text = try string(value, path) else { return nil }
            guard let result = make(text) else {
                throw fail(path, "\(text) is not one of \(allowed.joined(separator: ", "))")
            }
            return result
        }

        /// The document's settings, flattened to keys (`jwt.secret`) with their values as
        /// text or lists of text (`SettingsReader` parses them), and its namespaces.
        func contents(_ root: Any) throws(ConfigurationError) -> ConfigFile {
            guard let top = root as? [String: Any] else { throw fail("", "expected a mapping of names to values") }
            var file = ConfigFile(path: name)
            try flatten(top.filter { $0.key != "namespaces" && $0.key != "webhooks" }, prefix: "", into: &file.values)
            if let namespacesValue = top["namespaces"], !(namespacesValue is NSNull) {
                file.namespaces = try namespaces(namespacesValue)
            }
            if let webhooksValue = top["webhooks"], !(webhooksValue is NSNull) {
                file.webhooks = try webhooks(webhooksValue)
            }
            return file
        }

        /// Mappings become key paths; scalars become text; lists of scalars, lists of text.
        func flatten(_ mapping: [String: Any], prefix: String, into values: inout [String: ConfigContent]) throws(ConfigurationError) {
            for (name, value) in mapping {
                let key = prefix.isEmpty ? name : "\(prefix).\(name)"
                if value is NSNull { continue }
                if let nested = value as? [String: Any] {
                    try flatten(nested, prefix: key, into: &values)
                } else if value is [AnyHashable: Any] {
                    throw fail(key, "expected a mapping of names to values")
                } else if let list = value as? [Any] {
                    var texts: [String] = []
                    for (index, item) in list.enumerated() {
                        guard let text = scalar(item) else { throw fail("\(key)[\(index)]", "expected a string") }
                        texts.append(text)
                    }
                    values[key] = .stringArray(texts)
                } else if let text = scalar(value) {
                    values[key] = .string(text)
                } else {
                    throw fail(key, "expected a value")
                }
            }
        }

        func scalar(_ value: Any) -> String? {
            switch value {
            case let string as String: string
            case let bool as Bool: bool ? "true" : "false"
            case let int as Int: String(int)  // e.g. an all-digit API key
            case let double as Double: String(double)
            default: nil
            }
        }

        /// `webhooks` is a list of receivers: `url`, `secret`, optional `namespaces` (patterns as
        /// written under `namespaces:`), `events` (types), `queue_size`, `timeout_seconds`.
        func webhooks(_ value: Any) throws(ConfigurationError) -> [Webhook] {
            guard let list = value as? [Any] else { throw fail("webhooks", "expected a list of receivers (url, secret, …)") }
            var result: [Webhook] = []
            for (index, item) in list.enumerated() {
                let path = "webhooks[\(index)]"
                let options = try object(item, path, keys: ["url", "secret", "namespaces", "events", "queue_size", "timeout_seconds"])
                guard let url = try string(options["url"], "\(path).url") else { throw fail(path, "a webhook needs a url") }
                let lowered = url.lowercased()
                guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://"), url.count > 8 else {
                    throw fail("\(path).url", "expected an http:// or https:// URL, got \(url)")
                }
                guard let secret = try string(options["secret"], "\(path).secret"), !secret.isEmpty else {
                    throw fail(path, "a webhook needs a secret (the key of its signature)")
                }
                var webhook = Webhook(url: url, secret: secret)
                if let patterns = try strings(options["namespaces"], "\(path).namespaces") {
                    webhook.namespaces = patterns.map(Namespace.normalize(pattern:))
                }
                if let types = try strings(options["events"], "\(path).events") {
                    var kinds = Set<PresenceEvent.Kind>()
                    for type in types {
                        guard let kind = PresenceEvent.Kind(rawValue: type) else {
                            let known = PresenceEvent.Kind.allCases.map(\.rawValue).joined(separator: ", ")
                            throw fail("\(path).events", "\(type) is not one of \(known)")
                        }
                        kinds.insert(kind)
                    }
                    webhook.events = kinds
                }
                webhook.queueSize = try int(options["queue_size"], "\(path).queue_size", in: 1...1_000_000, "events") ?? webhook.queueSize
                webhook.timeoutSeconds =
                    try int(options["timeout_seconds"], "\(path).timeout_seconds", in: 1...300, "seconds") ?? webhook.timeoutSeconds
                result.append(webhook)
            }
            return result
        }

        func strings(_ value: Any?, _ path: String) throws(ConfigurationError) -> [String]? {
            guard let value, !(value is NSNull) else { return nil }
            guard let list = value as? [Any] else { throw fail(path, "expected a list of strings") }
            var result: [String] = []
            for (index, item) in list.enumerated() {
                guard let text = item as? String else { throw fail("\(path)[\(index)]", "expected a string") }
                result.append(text)
            }
            return result
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
                let options = try object(
                    optionsValue,
                    path,
                    keys: ["pattern", "channel", "join", "publish", "presence", "presence_grace", "history", "slow_consumer"]
                )
                if let behaviour = try choice(
                    options["channel"],
                    "\(path).channel",
                    { Namespace.Behaviour(rawValue: $0.lowercased()) },
                    Namespace.Behaviour.allCases.map(\.rawValue)
                ) {
                    namespace.behaviour = behaviour
                }
                if let join = try choice(
                    options["join"],
                    "\(path).join",
                    { Namespace.JoinRule(rawValue: $0.lowercased()) },
                    Namespace.JoinRule.allCases.map(\.rawValue)
                ) {
                    namespace.join = join
                }
                if namespace.join == .owner, !namespace.isPrefix {
                    throw fail("\(path).join", "owner needs a prefix pattern (the user id is the topic's suffix)")
                }
                if let publish = try bool(options["publish"], "\(path).publish") { namespace.clientPublish = publish }
                if let presence = options["presence"], !(presence is NSNull) {
                    switch presence {
                    case let on as Bool: namespace.presence = on ? .full : .off
                    case let text as String:
                        guard let mode = Namespace.PresenceMode(rawValue: text.lowercased()) else {
                            throw fail("\(path).presence", "expected true, false or count, got \(text)")
                        }
                        namespace.presence = mode
                    default: throw fail("\(path).presence", "expected true, false or count")
                    }
                }
                if let graceValue = options["presence_grace"], !(graceValue is NSNull) {
                    let grace: Double
                    switch graceValue {
                    case let int as Int: grace = Double(int)
                    case let double as Double: grace = double
                    default: throw fail("\(path).presence_grace", "expected a number of seconds")
                    }
                    guard grace >= 0, grace <= 3600 else { throw fail("\(path).presence_grace", "expected 0 to 3600 seconds") }
                    namespace.presenceGrace = grace
                }
                if let historyValue = options["history"], !(historyValue is NSNull) {
                    let history = try object(historyValue, "\(path).history", keys: ["size", "ttl", "max_recover"])
                    namespace.historySize = try int(history["size"], "\(path).history.size", in: 0...1_000_000, "messages") ?? namespace.historySize
                    namespace.historyTTL = try int(history["ttl"], "\(path).history.ttl", in: 0...31_536_000, "seconds") ?? namespace.historyTTL
                    namespace.historyMaxRecover =
                        try int(history["max_recover"], "\(path).history.max_recover", in: 0...1_000_000, "messages") ?? namespace.historyMaxRecover
                }
                if let policy = try choice(
                    options["slow_consumer"],
                    "\(path).slow_consumer",
                    { Namespace.SlowConsumerPolicy(rawValue: $0.lowercased()) },
                    Namespace.SlowConsumerPolicy.allCases.map(\.rawValue)
                ) {
                    namespace.slowConsumer = policy
                }
                result.append(namespace)
            }
            return result
        }
    }
}
