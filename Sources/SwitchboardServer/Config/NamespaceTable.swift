/// The server's namespaces, and which one a topic belongs to: an exact pattern wins over a prefix,
/// a longer prefix over a shorter one (so the order in the config file does not matter).
struct NamespaceTable: Sendable, Equatable {
    /// Most specific first.
    let namespaces: [Namespace]
    /// Whether this is the no-config demo set. There, topics outside every namespace keep the
    /// framework's `unmatched topic` join reply and the `/ws` route's `unknown topic …` reason, as
    /// before namespaces existed; a configured table refuses them with `unknown namespace`.
    let isBuiltIn: Bool

    /// The join-refusal reason for topics outside every configured namespace.
    static let unknownNamespaceReason = "unknown namespace"

    init(_ namespaces: [Namespace], isBuiltIn: Bool = false) {
        self.namespaces = namespaces.sorted { a, b in
            if a.isPrefix != b.isPrefix { return !a.isPrefix }  // exact topics first
            if a.prefix.count != b.prefix.count { return a.prefix.count > b.prefix.count }
            return a.pattern < b.pattern
        }
        self.isBuiltIn = isBuiltIn
    }

    /// The namespace of `topic`, if any.
    func namespace(of topic: String) -> Namespace? {
        namespaces.first { $0.matches(topic) }
    }

    /// The demo server's namespaces, used when no config file names any.
    static let builtIn = NamespaceTable(
        [
            Namespace(pattern: "room:*", behaviour: .chat, join: .anyone, clientPublish: true),
            Namespace(pattern: "ticker", behaviour: .ticker, join: .anyone, clientPublish: false),
            Namespace(pattern: "notifications:*", behaviour: .notifications, join: .owner, clientPublish: true),
            Namespace(pattern: "realtime:*", behaviour: .realtime, join: .anyone, clientPublish: true, presence: .full),
            Namespace(pattern: "public:*", behaviour: .generic, join: .anyone, clientPublish: false),
            Namespace(pattern: "online", behaviour: .online, join: .anyone, clientPublish: false, presence: .full),
            Namespace.feed,
        ],
        isBuiltIn: true
    )
}
