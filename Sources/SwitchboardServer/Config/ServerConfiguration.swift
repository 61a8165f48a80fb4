import Logging

/// Everything the `switchboard` executable is configured with, after layering its sources:
/// command-line flags over `SWITCHBOARD_*` environment variables over the config file over the
/// defaults below (`ServerConfiguration.resolve`).
struct ServerConfiguration: Sendable, Equatable {
    /// How log lines are written.
    enum LogFormat: String, Sendable, Equatable, CaseIterable {
        /// swift-log's default stream handler: one human-readable line per message.
        case text
        /// One JSON object per line: `timestamp`, `level`, `label`, `message`, `metadata`.
        case json
    }

    /// Address to listen on.
    var host = "127.0.0.1"
    /// Port to listen on (0 picks a free one).
    var port = 4000
    /// Lowest level that is logged.
    var logLevel: Logger.Level = .info
    /// How log lines are written.
    var logFormat: LogFormat = .text
    /// Key of the HTTP API; `nil`: a random key is generated and logged at start.
    var apiKey: String?
    /// Redis URL: nodes sharing a Redis act as one; `nil`: one in-memory node.
    var redisURL: String?
    /// With Redis: seconds a silent node keeps its presences before they are removed everywhere.
    var presenceLeaseSeconds = 30
    /// Browser origins allowed to connect (`OriginPolicy.allowList` patterns); `nil`: the default,
    /// `localhost`, `127.0.0.1` and `[::1]` on any port (requests without `Origin` always pass).
    var allowedOrigins: [String]?
    /// JWT verification of connections; no key: no verification (the `user_id` param names the user).
    var jwt = JWTConfiguration()
    /// Topic namespaces; `nil`: the built-in set of the demo (`NamespaceTable.builtIn`).
    var namespaces: [Namespace]?
    /// Receivers of presence lifecycle events (config file only).
    var webhooks: [Webhook] = []
    /// The config file these values were read from, if any (for the start-up log line).
    var configFile: String?

    /// The origins allowed when none are configured: local development pages on any port.
    static let defaultAllowedOrigins = ["//localhost", "//127.0.0.1", "//[::1]"]
}

/// How connection tokens (JWTs) are verified.
struct JWTConfiguration: Sendable, Equatable {
    /// Signature algorithms the server can verify.
    enum Algorithm: String, Sendable, Equatable, CaseIterable {
        /// HMAC with SHA-256 and a shared secret.
        case hs256 = "HS256"
        /// RSA PKCS#1 v1.5 with SHA-256; verified with an RSA public key.
        case rs256 = "RS256"
        /// ECDSA on P-256 with SHA-256; verified with an EC public key.
        case es256 = "ES256"
    }

    /// The accepted algorithm; `nil`: HS256 with a secret, RS256 or ES256 after the public key's type.
    var algorithm: Algorithm?
    /// HS256 shared secret.
    var secret: String?
    /// RS256/ES256 public key, PEM text.
    var publicKey: String?
    /// RS256/ES256 public key, read from this PEM file.
    var publicKeyFile: String?
    /// The claim that lists the topic patterns the token's user may join (`["chat:*", "ticker"]`).
    var topicsClaim = "channels"
    /// Refuse tokens without an `exp` claim.
    var requireExpiry = true
    /// Accept connections without a token (as anonymous users) when JWT verification is on.
    var allowAnonymous = true
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    var leewaySeconds = 0

    /// Whether a key is configured (then tokens are verified).
    var isEnabled: Bool { secret != nil || publicKey != nil || publicKeyFile != nil }
}
