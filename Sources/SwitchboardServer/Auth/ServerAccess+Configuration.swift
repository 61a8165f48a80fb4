import Logging
import Switchboard

extension ServerAccess {
    /// The access rules of a resolved configuration: its namespaces (the built-in set when it
    /// names none), its JWT key (none: no verification) and its allowed origins (`*`: any).
    static func make(_ configuration: ServerConfiguration) async throws(ConfigurationError) -> ServerAccess {
        let verifier = try await TokenVerifier.make(configuration.jwt)
        let origins = configuration.allowedOrigins ?? ServerConfiguration.defaultAllowedOrigins
        return ServerAccess(
            namespaces: configuration.namespaces.map { NamespaceTable($0) } ?? .builtIn,
            verifier: verifier,
            allowAnonymous: configuration.jwt.allowAnonymous,
            originPolicy: origins.contains("*") ? .any : .allowList(origins)
        )
    }

    /// Logs what the server runs with, and warns about rules that cannot work as written.
    func logStart(_ configuration: ServerConfiguration, logger: Logger) {
        let names = namespaces.namespaces.map { "\($0.pattern) (\($0.behaviour.rawValue), join: \($0.join.rawValue), publish: \($0.clientPublish))" }
        logger.info(
            "configuration",
            metadata: [
                "switchboard.config_file": "\(configuration.configFile ?? "none")",
                "switchboard.namespaces": .array(names.map { .string($0) }),
                "switchboard.jwt": "\(verifier.map { $0.algorithm.rawValue } ?? "off")",
                "switchboard.allowed_origins": "\(configuration.allowedOrigins ?? ServerConfiguration.defaultAllowedOrigins)",
            ]
        )
        for namespace in namespaces.namespaces {
            if verifier == nil, namespace.join == .authenticated || namespace.join == .token {
                logger.warning(
                    "namespace \(namespace.pattern) joins need \(namespace.join.rawValue), but no JWT key is configured: \(namespace.join == .token ? "nobody can join" : "the unverified user_id param counts")"
                )
            }
            if namespace.slowConsumer != .disconnect {
                logger.notice("namespace \(namespace.pattern): slow_consumer is accepted but not active yet")
            }
            if namespace.historySize > 0, configuration.redisURL != nil {
                logger.warning(
                    "namespace \(namespace.pattern): history is kept on each node, in memory; with Redis, positions differ between nodes (a client recovers on the node it was on)"
                )
            }
        }
    }
}

extension ServerConfiguration {
    /// The resolved configuration as JSON (`--print-config`); secrets are shown as `(set)`.
    var summary: JSONValue {
        func secret(_ value: String?) -> JSONValue { value == nil ? .null : "(set)" }
        func string(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
        let namespaceList: JSONValue =
            namespaces.map { list in
                .array(
                    NamespaceTable(list).namespaces.map { namespace in
                        .object([
                            "pattern": .string(namespace.pattern),
                            "channel": .string(namespace.behaviour.rawValue),
                            "join": .string(namespace.join.rawValue),
                            "publish": .bool(namespace.clientPublish),
                            "presence": namespace.presence == .count ? "count" : .bool(namespace.presence == .full),
                            "presence_grace": .double(namespace.presenceGrace),
                            "history": [
                                "size": .int(Int64(namespace.historySize)), "ttl": .int(Int64(namespace.historyTTL)),
                                "max_recover": .int(Int64(namespace.historyMaxRecover)),
                            ],
                            "slow_consumer": .string(namespace.slowConsumer.rawValue),
                        ])
                    }
                )
            } ?? "built-in"
        return [
            "config_file": string(configFile),
            "host": .string(host),
            "port": .int(Int64(port)),
            "log_level": .string(logLevel.rawValue),
            "log_format": .string(logFormat.rawValue),
            "api_key": secret(apiKey),
            "redis_url": redisURL == nil ? .null : "(set)",  // may hold a password
            "presence_lease_seconds": .int(Int64(presenceLeaseSeconds)),
            "allowed_origins": .array((allowedOrigins ?? Self.defaultAllowedOrigins).map { .string($0) }),
            "jwt": [
                "algorithm": string(jwt.algorithm?.rawValue),
                "secret": secret(jwt.secret),
                "public_key": secret(jwt.publicKey),
                "public_key_file": string(jwt.publicKeyFile),
                "topics_claim": .string(jwt.topicsClaim),
                "require_exp": .bool(jwt.requireExpiry),
                "allow_anonymous": .bool(jwt.allowAnonymous),
                "leeway": .int(Int64(jwt.leewaySeconds)),
            ],
            "namespaces": namespaceList,
            "webhooks": .array(
                webhooks.map { webhook in
                    [
                        "url": .string(webhook.url),
                        "secret": "(set)",
                        "namespaces": webhook.namespaces.map { .array($0.map { .string($0) }) } ?? "all",
                        "events": webhook.events.map { .array($0.map(\.rawValue).sorted().map { .string($0) }) } ?? "all",
                        "queue_size": .int(Int64(webhook.queueSize)),
                        "timeout_seconds": .int(Int64(webhook.timeoutSeconds)),
                    ]
                }
            ),
        ]
    }
}
