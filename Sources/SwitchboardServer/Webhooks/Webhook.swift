import Switchboard

/// One receiver of presence lifecycle events (a `webhooks` entry of the config file).
struct Webhook: Sendable, Equatable {
    /// Where the events are POSTed (`http://` or `https://`).
    var url: String
    /// The HMAC-SHA256 key of the `X-Switchboard-Signature` header.
    var secret: String
    /// Namespace patterns as written under `namespaces:`; nil: every namespace.
    var namespaces: [String]?
    /// The event types sent; nil: all of them.
    var events: Set<PresenceEvent.Kind>?
    /// Most events waiting for this receiver; beyond it new events are dropped (counted, logged).
    var queueSize = 10_000
    /// Seconds one POST may take before it counts as failed (and is retried).
    var timeoutSeconds = 5

    /// Most events in one POST.
    static let maxBatch = 100

    /// Whether an event of `kind` in the namespace with `pattern` (nil: none) goes to this receiver.
    func wants(_ kind: PresenceEvent.Kind, namespace pattern: String?) -> Bool {
        if let events, !events.contains(kind) { return false }
        if let namespaces {
            guard let pattern, namespaces.contains(pattern) else { return false }
        }
        return true
    }
}
