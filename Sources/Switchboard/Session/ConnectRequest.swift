import Foundation

/// What a connect handler knows about a connection attempt, whatever the transport (Phoenix
/// WebSocket, long-poll, Server-Sent Events, plain WebSocket).
public struct ConnectRequest: Sendable {
    /// Query parameters; when a key repeats, the last value wins (as in Phoenix).
    public var params: [String: String]
    /// Query parameters in order, repeats included.
    public var queryItems: [(name: String, value: String)]
    /// URL variables of the route that matched (a plain channel at `/ws/{token}` ⇒
    /// `parameters["token"]`); empty for Phoenix socket paths.
    public var parameters: [String: String]
    /// Request headers (names lower-cased).
    public var headers: [(name: String, value: String)]
    /// The peer's address, e.g. `127.0.0.1:53122`.
    public var peerAddress: String?
    /// The request path.
    public var path: String
    /// A token from the client: phoenix.js's `authToken` option (in `Sec-WebSocket-Protocol`),
    /// decoded, or `Authorization: Bearer <token>` on the HTTP transports.
    public var authToken: String?

    public init(
        params: [String: String] = [:],
        queryItems: [(name: String, value: String)] = [],
        parameters: [String: String] = [:],
        headers: [(name: String, value: String)] = [],
        peerAddress: String? = nil,
        path: String = "/",
        authToken: String? = nil
    ) {
        self.params = params
        self.queryItems = queryItems
        self.parameters = parameters
        self.headers = headers
        self.peerAddress = peerAddress
        self.path = path
        self.authToken = authToken
    }

    /// The first header with this name (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }

    /// The query parameters (the last value wins): the former plain-channel name of `params`.
    @available(*, deprecated, renamed: "params")
    public var query: [String: String] { params }

    /// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive),
    /// or nil for any other header or none.
    public static func bearerToken(authorization: String?) -> String? {
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else { return nil }
        let token = authorization.dropFirst(7).trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }
}

/// The former name of `ConnectRequest` for plain channels.
@available(*, deprecated, renamed: "ConnectRequest")
public typealias PlainConnectRequest = ConnectRequest

/// A refused connection, on every transport: the HTTP status of the answer (403 by default) and
/// the reason it carries (`{"error": reason}`). A connect handler may also throw it.
public struct ConnectRefusal: Error, Sendable, Hashable {
    public var status: Int
    public var reason: String?

    public init(status: Int = 403, reason: String? = nil) {
        self.status = status
        self.reason = reason
    }

    /// 403 "origin not allowed": the request's `Origin` is not one the policy allows.
    public static let originNotAllowed = ConnectRefusal(status: 403, reason: "origin not allowed")
}

/// A Phoenix socket's connect decision.
public enum ConnectResult: Sendable {
    /// Accept. `id` (e.g. `user_socket:42`) lets `Hub.disconnect(socketID:)` close the connection later.
    case accept(id: String? = nil, assigns: Assigns = Assigns())
    /// Refuse before any socket is opened: an HTTP status (403 by default) and an optional reason.
    case refuse(status: Int = 403, reason: String? = nil)

    /// The refusal, if this is one.
    public var refusal: ConnectRefusal? {
        if case .refuse(let status, let reason) = self { return ConnectRefusal(status: status, reason: reason) }
        return nil
    }
}
