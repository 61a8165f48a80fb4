import Switchboard

/// A family of topics with the same rules: an exact topic (`ticker`) or a prefix (`chat:*`).
///
/// Who may join, whether clients may publish, and which built-in channel behaviour (if any) serves
/// it, and whether its topics track presence. `slowConsumer` is
/// accepted and kept for the issues that implement them; they have no effect yet.
struct Namespace: Sendable, Equatable {
    /// Who may join a topic of the namespace.
    enum JoinRule: String, Sendable, Equatable, CaseIterable {
        /// Everyone, anonymous connections included.
        case anyone
        /// Connections that presented a valid token (with JWT off: those that named a `user_id`).
        case authenticated
        /// Connections whose token's topics claim allows the topic.
        case token
        /// The user whose id is the topic's suffix after the prefix (`notifications:<user id>`).
        case owner
    }

    /// The code serving the namespace's topics.
    enum Behaviour: String, Sendable, Equatable, CaseIterable {
        /// Join rule and publish rule only: client events are rebroadcast to the topic when
        /// publishing is allowed, refused otherwise.
        case generic
        /// The demo chat room (`RoomChannel`): `new_msg`, `user_joined`, `user_left`, `ping`.
        case chat
        /// The demo ticker (`TickerChannel`; `TickerService` ticks the `ticker` topic).
        case ticker
        /// The demo notifications (`NotificationsChannel`; meant for `notifications:*`).
        case notifications
        /// Supabase Realtime broadcast semantics (`RealtimeChannel`).
        case realtime
        /// The demo's live session count (`OnlineChannel`; meant for `online`).
        case online
    }

    /// What happens to a subscriber that cannot keep up (not active yet: the session's own
    /// limit, disconnect, applies).
    enum SlowConsumerPolicy: String, Sendable, Equatable, CaseIterable {
        case disconnect
        case dropOldest = "drop_oldest"
        case keepLatest = "keep_latest"
    }

    /// Whether the namespace's topics track who is present.
    enum PresenceMode: String, Sendable, Equatable, CaseIterable {
        /// No presence (the default).
        case off = "false"
        /// Every joined connection is tracked under its user id; clients get `presence_state`
        /// and `presence_diff` (in `realtime` namespaces clients track themselves).
        case full = "true"
        /// Tracked like `full`, but clients get only `presence_count`.
        case count
    }

    /// `ticker` (exactly that topic) or `chat:*` (every topic starting with `chat:`).
    var pattern: String
    var behaviour: Behaviour = .generic
    var join: JoinRule = .anyone
    /// Whether clients may publish into the namespace's topics (generic: their events are
    /// rebroadcast; built-in behaviours: their events reach the behaviour). Otherwise client
    /// events get an error reply.
    var clientPublish = false
    var presence = PresenceMode.off
    /// Seconds a user's last meta stays after its connection left (`presence_grace`).
    var presenceGrace = 0.0
    /// Messages kept per topic (0: no history).
    var historySize = 0
    /// Seconds a message is kept (0: the default, 300).
    var historyTTL = 0
    /// Most messages one recovery replays.
    var historyMaxRecover = 1000

    /// The demo's `feed:*`: server-only publish, history (100 messages, 5 minutes).
    static var feed: Namespace {
        var namespace = Namespace(pattern: "feed:*", behaviour: .generic, join: .anyone, clientPublish: false)
        namespace.historySize = 100
        namespace.historyTTL = 300
        return namespace
    }

    /// The history policy of the namespace's topics; nil without history.
    var historyPolicy: HistoryPolicy? {
        guard historySize > 0 else { return nil }
        return HistoryPolicy(size: historySize, ttl: .seconds(historyTTL > 0 ? historyTTL : 300), maxRecover: historyMaxRecover)
    }
    /// Not active yet (slow-consumer policy issue).
    var slowConsumer: SlowConsumerPolicy = .disconnect

    /// Whether the pattern is a prefix pattern.
    var isPrefix: Bool { pattern.hasSuffix("*") }

    /// The part of the pattern a topic must start with (or equal, for an exact pattern).
    var prefix: Substring { isPrefix ? pattern.dropLast() : Substring(pattern) }

    /// Whether `topic` belongs to this namespace.
    func matches(_ topic: String) -> Bool {
        isPrefix ? topic.hasPrefix(prefix) : topic == pattern
    }

    /// The part of `topic` after the prefix (`notifications:42` → `42`); empty for exact patterns.
    func suffix(of topic: String) -> Substring {
        isPrefix ? topic.dropFirst(prefix.count) : ""
    }

    /// Normalizes a pattern as written in a config file: `chat:` (a trailing colon) means `chat:*`.
    static func normalize(pattern: String) -> String {
        pattern.hasSuffix(":") ? pattern + "*" : pattern
    }
}

/// Whether a topic pattern (from a token's topics claim, `chat:*` or an exact topic) allows `topic`.
func topicPattern(_ pattern: String, allows topic: String) -> Bool {
    if pattern == "*" { return true }
    if pattern.hasSuffix("*") { return topic.hasPrefix(pattern.dropLast()) }
    return topic == pattern
}
