import Configuration
import Synchronization

/// The server's settings through one swift-configuration `ConfigReader` over three providers, in
/// precedence order: the command-line flags, the `SWITCHBOARD_*` environment, the config file.
///
/// A setting is named once, by its config-file key (`port`, `jwt.public_key_file`); the
/// environment variable follows from it (`SWITCHBOARD_PORT`, `SWITCHBOARD_JWT_PUBLIC_KEY_FILE`),
/// as does the flag (`--port`, `--jwt-public-key-file`) unless the command names it otherwise.
/// So a new setting is one line in `ServerConfiguration.init(reading:)` (and an `@Option` if it
/// wants a flag of its own).
///
/// Every value is read as text and parsed here, so that a bad value is an error that names where
/// it came from (`--port`, `SWITCHBOARD_PORT`, `switchboard.yaml: port`) whatever its source; the
/// reader's access reporter says which provider answered.
struct SettingsReader {
    /// Where a value came from, by provider.
    enum Source: Equatable {
        /// The command line; the flags whose names are not the key's (`redis_url` is `--redis`).
        case flags(names: [String: String])
        /// The `SWITCHBOARD_*` variables.
        case environment
        /// The config file at this path.
        case file(String)

        /// 0 for the highest source: the flags, then the environment, then the file.
        var precedence: Int {
            switch self {
            case .flags: 0
            case .environment: 1
            case .file: 2
            }
        }

        /// How an error message names `key` in this source.
        func name(of key: String) -> String {
            switch self {
            case .flags(let names):
                return names[key] ?? "--" + key.replacing("_", with: "-").replacing(".", with: "-")
            case .environment:
                return SettingsReader.environmentName(of: key)
            case .file(let path):
                return "\(path): \(key)"
            }
        }
    }

    /// Keys whose values are secrets: marked so in every provider, so that swift-configuration's
    /// access logging redacts them (`--print-config` shows them as `(set)`).
    static let secretKeys: Set<String> = ["api_key", "jwt.secret", "redis_url"]

    /// `jwt.public_key_file` → `SWITCHBOARD_JWT_PUBLIC_KEY_FILE`, as swift-configuration's
    /// environment provider encodes the prefixed key.
    static func environmentName(of key: String) -> String {
        "SWITCHBOARD_" + key.uppercased().replacing(".", with: "_")
    }

    /// The three sources layered: where values come from.
    private let reader: ConfigReader
    /// Each source alone: a value that a higher source overrides must be valid too (a mistake is
    /// an error wherever it is, not only once the flag that hides it is dropped).
    private let sourceReaders: [ConfigReader]
    private let sources: [Source]
    private let recorder = LookupRecorder()

    /// - Parameters:
    ///   - flags: the values the command line set, by key.
    ///   - flagNames: the flags not named after their key.
    ///   - environment: the process environment (empty values count as unset).
    ///   - file: the config file's path and its values, by key.
    init(
        flags: [String: ConfigContent],
        flagNames: [String: String] = [:],
        environment: [String: String],
        file: (path: String, values: [String: ConfigContent])?
    ) {
        func memory(_ name: String, _ values: [String: ConfigContent]) -> InMemoryProvider {
            var entries: [AbsoluteConfigKey: ConfigValue] = [:]
            for (key, content) in values {
                entries[AbsoluteConfigKey(ConfigKey(key))] = ConfigValue(content, isSecret: Self.secretKeys.contains(key))
            }
            return InMemoryProvider(name: name, values: entries)
        }
        let variables = environment.filter { $0.key.hasPrefix("SWITCHBOARD_") && !$0.value.isEmpty }
        var providers: [any ConfigProvider] = [
            memory("flags", flags),
            EnvironmentVariablesProvider(
                environmentVariables: variables,
                secretsSpecifier: .specific(Set(Self.secretKeys.map(Self.environmentName(of:))))
            ).prefixKeys(with: "switchboard"),
        ]
        var sources: [Source] = [.flags(names: flagNames), .environment]
        if let file {
            providers.append(memory(file.path, file.values))
            sources.append(.file(file.path))
        }
        let recorder = recorder
        self.reader = ConfigReader(providers: providers, accessReporter: recorder)
        self.sourceReaders = providers.map { ConfigReader(provider: $0, accessReporter: recorder) }
        self.sources = sources
    }

    /// The keys read so far (the config file's keys are checked against them).
    var keysRead: Set<String> { recorder.keys }

    /// The text at `key` and where it came from; nil when no source sets it.
    func text(_ key: String) throws(ConfigurationError) -> (value: String, source: Source)? {
        try texts(key).first
    }

    /// The text at `key` in every source that sets it, highest first (the first is in force).
    func texts(_ key: String) throws(ConfigurationError) -> [(value: String, source: Source)] {
        let value = reader.string(forKey: ConfigKey(key))
        // The source first: a value of the wrong shape reads as nil, and is an error there.
        guard let winner = try source(of: key, among: sources, expected: "a single value"), let value else { return [] }
        var found = [(value: value, source: winner)]
        for (index, single) in sourceReaders.enumerated() where sources[index] != winner {
            let other = single.string(forKey: ConfigKey(key))
            if try source(of: key, among: [sources[index]], expected: "a single value") != nil, let other {
                found.append((other, sources[index]))
            }
        }
        return found
    }

    /// The list at `key` (a list, or one comma-separated text) and where it came from.
    func list(_ key: String) throws(ConfigurationError) -> (value: [String], source: Source)? {
        if let value = reader.stringArray(forKey: ConfigKey(key)), let source = try? source(of: key, among: sources, expected: "a list") {
            return (value.flatMap { ServerConfiguration.parseList($0) }, source)
        }
        guard let (text, source) = try text(key) else { return nil }
        return (ServerConfiguration.parseList(text), source)
    }

    /// Reads `key` into `value` through `parse` (which is told the source's name of the key for
    /// its messages); leaves `value` as it is when no source sets the key. The values of the
    /// sources below are parsed too, so that their mistakes are errors as well.
    func read<Value>(_ key: String, into value: inout Value, _ parse: (String, String) throws(ConfigurationError) -> Value) throws(ConfigurationError)
    {
        let found = try texts(key)
        guard let first = found.first else { return }
        for (text, source) in found.dropFirst() {
            _ = try parse(text, source.name(of: key))
        }
        value = try parse(first.value, first.source.name(of: key))
    }

    /// The source that answered the last lookup of `key` (`candidates`: the sources of the reader
    /// that made it), or the error of the one that could not.
    private func source(of key: String, among candidates: [Source], expected: String) throws(ConfigurationError) -> Source? {
        guard let results = recorder.lastResults(for: key) else { return nil }
        for (index, result) in results.enumerated() where index < candidates.count {
            switch result {
            case .success(let lookup) where lookup.value != nil:
                return candidates[index]
            case .success:
                continue
            case .failure:
                throw ConfigurationError("\(candidates[index].name(of: key)): expected \(expected)")
            }
        }
        return nil
    }
}

/// The reader's access reporter: keeps what each provider answered for the last lookup of each key.
private final class LookupRecorder: AccessReporter, Sendable {
    private let state = Mutex<[String: [Result<LookupResult, any Error>]]>([:])

    func report(_ event: AccessEvent) {
        // The key as the code asked for it (the environment's `switchboard` prefix is added inside
        // that provider).
        let key = event.metadata.key.components.joined(separator: ".")
        state.withLock { $0[key] = event.providerResults.map(\.result) }
    }

    func lastResults(for key: String) -> [Result<LookupResult, any Error>]? {
        state.withLock { $0[key] }
    }

    var keys: Set<String> { state.withLock { Set($0.keys) } }
}
