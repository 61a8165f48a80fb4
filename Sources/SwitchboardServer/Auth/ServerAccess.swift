import Foundation
import Switchboard

/// Who a connection is, as decided at connect.
struct ConnectionIdentity: Sendable, Equatable {
    /// The user id: the token's `sub` with JWT verification on, else the `user_id` connect param.
    var userID: String?
    /// The verified token, when one was presented (JWT verification on).
    var token: VerifiedToken?

    /// Assigns keys under which a Phoenix connection carries its identity.
    static let userIDKey = "user_id"
    static let tokenKey = "switchboard.token"

    /// The identity stored in a connection's (or channel's) assigns.
    init(assigns: Assigns) {
        userID = assigns[Self.userIDKey]
        token = assigns[Self.tokenKey]
    }

    init(userID: String? = nil, token: VerifiedToken? = nil) {
        self.userID = userID
        self.token = token
    }

    /// Assigns carrying this identity.
    var assigns: Assigns {
        var assigns = Assigns()
        if let userID { assigns[Self.userIDKey] = userID }
        if let token { assigns[Self.tokenKey] = token }
        return assigns
    }
}

/// Why a connection or a subscription is refused: the reason a client reads (403 body, join reply).
struct AccessRefusal: Error, Equatable {
    let reason: String

    init(_ reason: String) {
        self.reason = reason
    }
}

/// The server's access rules, applied the same way on every transport: who may connect (JWT), which
/// topics exist (namespaces), who may join them, and which browser origins may connect.
struct ServerAccess: Sendable {
    let namespaces: NamespaceTable
    /// Token verification; `nil`: off (the `user_id` connect param names the user, unverified).
    let verifier: TokenVerifier?
    /// With verification on: whether connections without a token are accepted (anonymous).
    let allowAnonymous: Bool
    let originPolicy: OriginPolicy

    /// The no-configuration rules: the demo namespaces, no token verification, local origins.
    static let builtIn = ServerAccess(
        namespaces: .builtIn,
        verifier: nil,
        allowAnonymous: true,
        originPolicy: .allowList(ServerConfiguration.defaultAllowedOrigins)
    )

    /// Join decision for one topic.
    enum JoinDecision: Sendable, Equatable {
        case allowed(Namespace)
        /// The topic is in a namespace whose rules refuse this connection.
        case refused(String)
        /// The topic is in no namespace.
        case unknownNamespace
    }

    // MARK: Connect

    /// Who the connection is, from its token (`token` param or `authToken`: phoenix.js's subprotocol,
    /// an SSE `Authorization: Bearer`) or, with verification off, its `user_id` param; or the
    /// reason it is refused (403).
    func identify(token: String?, userIDParam: String?) async -> Result<ConnectionIdentity, AccessRefusal> {
        guard let verifier else {
            guard let user = userIDParam, !user.isEmpty else { return .success(ConnectionIdentity()) }
            return .success(ConnectionIdentity(userID: user))
        }
        guard let token, !token.isEmpty else {
            return allowAnonymous ? .success(ConnectionIdentity()) : .failure(AccessRefusal("a token is required"))
        }
        switch await verifier.verify(token) {
        case .success(let verified): return .success(ConnectionIdentity(userID: verified.subject, token: verified))
        case .failure(let rejection): return .failure(AccessRefusal(rejection.reason))
        }
    }

    /// The Phoenix socket's connect handler (WebSocket, long-poll, SSE): socket id
    /// `user_socket:<user id>` for identified users, anonymous otherwise.
    func connect(_ request: ConnectRequest) async -> ConnectResult {
        let token = request.params["token"].flatMap { $0.isEmpty ? nil : $0 } ?? request.authToken
        switch await identify(token: token, userIDParam: request.params["user_id"]) {
        case .success(let identity):
            return .accept(id: identity.userID.map { "user_socket:\($0)" }, assigns: identity.assigns)
        case .failure(let refusal):
            return .refuse(status: 403, reason: refusal.reason)
        }
    }

    // MARK: Join

    /// Whether `identity` may join `topic`.
    func mayJoin(topic: String, identity: ConnectionIdentity) -> JoinDecision {
        guard let namespace = namespaces.namespace(of: topic) else { return .unknownNamespace }
        switch namespace.join {
        case .anyone:
            break
        case .authenticated:
            guard identity.userID != nil else { return .refused("unauthorized: a valid token is required") }
        case .token:
            guard identity.token?.allows(topic: topic) == true else { return .refused("topic not allowed by token") }
        case .owner:
            guard let user = identity.userID, namespace.suffix(of: topic) == user else { return .refused("unauthorized") }
        }
        // A token that lists topics restricts every join, whatever the namespace's rule.
        if let token = identity.token, token.topics != nil, !token.allows(topic: topic) {
            return .refused("topic not allowed by token")
        }
        return .allowed(namespace)
    }

    /// The decision for a plain WebSocket (or SSE) client of `/ws/<topic>`: its token comes in the
    /// `token` query parameter or `Authorization: Bearer`, its unverified user id (verification
    /// off) in `user_id`. Returns the topic's namespace, or the refusal reason (403).
    func authorizePlain(topic: String, request: ConnectRequest) async -> Result<Namespace, AccessRefusal> {
        let token = request.params["token"].flatMap { $0.isEmpty ? nil : $0 } ?? request.authToken
        let identity: ConnectionIdentity
        switch await identify(token: token, userIDParam: request.params["user_id"]) {
        case .success(let found): identity = found
        case .failure(let refusal): return .failure(refusal)
        }
        switch mayJoin(topic: topic, identity: identity) {
        case .allowed(let namespace): return .success(namespace)
        case .refused(let reason): return .failure(AccessRefusal(reason))
        case .unknownNamespace:
            // The demo's wording, kept in the no-config mode for the clients written against it.
            return .failure(AccessRefusal(namespaces.isBuiltIn ? "unknown topic \(topic)" : NamespaceTable.unknownNamespaceReason))
        }
    }

    // MARK: Publish

    /// `HubAPI.validateTopic`: the HTTP API publishes only into known namespaces.
    func validatePublish(topic: String) -> Bool {
        namespaces.namespace(of: topic) != nil
    }

    // MARK: Channels

    /// Routes every namespace of the table to its channel on `socket`, then (for a configured
    /// table) everything else to a channel that refuses with `unknown namespace`.
    func registerChannels(on socket: inout PhoenixSocket) {
        for namespace in namespaces.namespaces {
            socket.channel(namespace.pattern, NamespaceChannel(namespace: namespace, access: self, behaviour: Self.channel(for: namespace)))
        }
        if !namespaces.isBuiltIn {
            socket.channel("*", UnknownNamespaceChannel())
        }
    }

    /// The hub's presence rules: each topic's namespace says whether it is count-only and how
    /// long a leaving user's last meta stays (`presence_grace`).
    var presenceConfiguration: Presence.Configuration {
        var configuration = Presence.Configuration()
        let namespaces = self.namespaces
        configuration.policy = { topic in
            guard let namespace = namespaces.namespace(of: topic), namespace.presence != .off else { return Presence.TopicPolicy() }
            return Presence.TopicPolicy(countOnly: namespace.presence == .count, grace: .milliseconds(Int64(namespace.presenceGrace * 1000)))
        }
        return configuration
    }

    /// The hub's history: each topic keeps its namespace's `history` (none by default).
    var historyConfiguration: History.Configuration {
        var configuration = History.Configuration()
        let namespaces = self.namespaces
        configuration.policy = { topic in namespaces.namespace(of: topic)?.historyPolicy }
        return configuration
    }

    /// The built-in channel of a namespace's behaviour; `nil` for the generic one.
    static func channel(for namespace: Namespace) -> (any TopicChannel)? {
        switch namespace.behaviour {
        case .generic: return nil
        case .chat: return RoomChannel()
        case .ticker: return TickerChannel()
        case .notifications: return NotificationsChannel()
        case .realtime: return RealtimeChannel(presence: namespace.presence != .off)
        case .online: return OnlineChannel()
        }
    }
}
