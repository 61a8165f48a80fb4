import NIOCore

/// A `ws://` or `http://` URL whose host is on the loopback network (127.0.0.0/8, or
/// `localhost`): the only targets the bench agrees to load.
struct BenchURL: Sendable, CustomStringConvertible {
    enum Scheme: String, Sendable {
        case ws
        case http
    }

    let scheme: Scheme
    /// The host as written (used in the `Host` header).
    let host: String
    /// The IPv4 address connected to (`localhost` becomes 127.0.0.1).
    let address: String
    let port: Int
    /// Path and query, starting with `/`.
    let target: String

    var description: String { "\(scheme.rawValue)://\(host):\(port)\(target)" }
    var hostHeader: String { "\(host):\(port)" }

    init(_ text: String, allowed: Set<Scheme>) throws {
        guard let range = text.firstRange(of: "://") else { throw BenchError("\(text): not a URL (expected ws://… or http://…)") }
        guard let scheme = Scheme(rawValue: String(text[..<range.lowerBound]).lowercased()), allowed.contains(scheme) else {
            throw BenchError("\(text): the scheme must be \(allowed.map { $0.rawValue + "://" }.sorted().joined(separator: " or ")) (no TLS)")
        }
        let rest = text[range.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if target.isEmpty { target = "/" } else if target.first == "?" { target = "/" + target }
        var host = String(authority)
        var port = 80
        if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let parsed = Int(authority[authority.index(after: colon)...]), (1...65535).contains(parsed) else {
                throw BenchError("\(text): bad port")
            }
            port = parsed
        }
        self.scheme = scheme
        self.host = host
        self.port = port
        self.target = target
        self.address = try Self.loopbackAddress(host)
    }

    /// The IPv4 address of `host` when it is on 127.0.0.0/8; anything else is refused.
    static func loopbackAddress(_ host: String) throws -> String {
        if host.lowercased() == "localhost" { return "127.0.0.1" }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        let octets = parts.compactMap { UInt8($0) }
        guard parts.count == 4, octets.count == 4 else {
            throw BenchError("\(host): give an IPv4 address in 127.0.0.0/8 (or localhost); other hosts are refused")
        }
        guard octets[0] == 127 else { throw BenchError("\(host): only loopback targets (127.0.0.0/8) are allowed") }
        return host
    }

    func socketAddress() throws -> SocketAddress {
        try SocketAddress(ipAddress: address, port: port)
    }

    /// This URL with `name=value` added to the query, unless the query already has `name`.
    func addingQueryItem(_ name: String, _ value: String) -> BenchURL {
        let query = target.split(separator: "?", maxSplits: 1).dropFirst().first ?? ""
        if query.split(separator: "&").contains(where: { $0 == name || $0.hasPrefix(name + "=") }) { return self }
        return BenchURL(copying: self, target: target + (target.contains("?") ? "&" : "?") + "\(name)=\(value)")
    }

    private init(copying other: BenchURL, target: String) {
        scheme = other.scheme
        host = other.host
        address = other.address
        port = other.port
        self.target = target
    }
}
