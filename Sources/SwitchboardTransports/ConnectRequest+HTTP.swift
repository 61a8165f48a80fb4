import NIOCore
import NIOHTTP1
import Switchboard

extension ConnectRequest {
    /// The connect request of an HTTP request, as every transport builds it: the query parsed
    /// once (`QueryString`: `+` is a space, the last repeat wins in `params`), header names
    /// lower-cased, and `Authorization: Bearer <token>` as `authToken`.
    public init(uri: String, headers: some Sequence<(name: String, value: String)>, peerAddress: String?) {
        let (path, query) = QueryString.split(uri: uri)
        let items = QueryString.parse(query)
        var params: [String: String] = [:]
        for item in items { params[item.name] = item.value }  // the last value wins, as in Phoenix
        let headers = headers.map { (name: $0.name.lowercased(), value: $0.value) }
        self.init(
            params: params,
            queryItems: items,
            headers: headers,
            peerAddress: peerAddress,
            path: path,
            authToken: ConnectRequest.bearerToken(authorization: headers.first { $0.name == "authorization" }?.value)
        )
    }

    /// The connect request of a NIO request head on `channel`.
    public init(head: HTTPRequestHead, channel: any Channel) {
        self.init(uri: head.uri, headers: head.headers.map { (name: $0.name, value: $0.value) }, peerAddress: Self.peerAddress(channel))
    }

    /// The peer's `address:port`, for connect handlers.
    public static func peerAddress(_ channel: any Channel) -> String? {
        channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" }
    }
}

extension ConnectRefusal {
    /// The body of a refused request's answer: `{"error": reason}`, or none without a reason.
    package var body: JSONValue? {
        reason.map { ["error": .string($0)] }
    }
}
