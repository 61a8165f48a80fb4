import Foundation

/// Which browser origins may open a connection (checked on WebSocket upgrades before anything
/// else, like Phoenix's `check_origin`). Requests without an `Origin` header (native, mobile and
/// server clients) are always allowed: only browsers send it.
public enum OriginPolicy: Sendable {
    /// Any origin.
    case any
    /// Origins matching one of the patterns: `https://example.com`, `//example.com:8080`,
    /// `//*.example.com` (the domain and its subdomains). A part left out matches anything.
    case allowList([String])
    /// Your own decision on the `Origin` header's value.
    case custom(@Sendable (String) -> Bool)

    /// The refusal for a connect request whose `Origin` this policy does not allow (every
    /// transport asks this first, before the connect handler runs), or nil.
    public func refusal(for request: ConnectRequest) -> ConnectRefusal? {
        allows(origin: request.header("origin")) ? nil : .originNotAllowed
    }

    /// Whether a request with this `Origin` header (nil: none) may connect.
    public func allows(origin: String?) -> Bool {
        guard let origin else { return true }
        switch self {
        case .any:
            return true
        case .custom(let decide):
            return decide(origin)
        case .allowList(let patterns):
            guard let parsed = Self.parse(origin), !parsed.host.isEmpty else { return false }
            return patterns.contains { pattern in
                guard let p = Self.parse(pattern) else { return false }
                if let scheme = p.scheme, scheme != parsed.scheme { return false }
                if let port = p.port, port != parsed.port { return false }
                if p.host.hasPrefix("*.") {
                    let base = String(p.host.dropFirst(2))
                    return parsed.host == base || parsed.host.hasSuffix("." + base)
                }
                return p.host == parsed.host
            }
        }
    }

    struct Parsed {
        var scheme: String?
        var host: String
        var port: Int?
    }

    /// Parses `scheme://host:port` or `//host:port` (host lower-cased; default ports filled in
    /// when the scheme is known).
    static func parse(_ text: String) -> Parsed? {
        var rest = Substring(text.lowercased())
        var scheme: String?
        if let range = rest.range(of: "://") {
            scheme = String(rest[..<range.lowerBound])
            rest = rest[range.upperBound...]
        } else if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
        } else {
            return nil
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var port: Int?
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let p = Int(rest[rest.index(after: colon)...]) else { return nil }
            port = p
            rest = rest[..<colon]
        } else if scheme == "https" || scheme == "wss" {
            port = 443
        } else if scheme == "http" || scheme == "ws" {
            port = 80
        }
        return Parsed(scheme: scheme, host: String(rest), port: port)
    }
}
