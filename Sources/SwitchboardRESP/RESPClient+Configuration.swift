import NIOCore

extension RESPClient {
    /// Where and how to connect. Every field has a default that works with a local Redis.
    public struct Configuration: Sendable {
        /// Server host name or address.
        public var host = "127.0.0.1"
        /// Server port.
        public var port = 6379
        /// ACL user for `HELLO 3 AUTH` (`default` when only a password is set).
        public var username: String?
        /// Password for `HELLO 3 AUTH`; no authentication when `nil`.
        public var password: String?
        /// Database selected after connecting (`SELECT`); 0 sends nothing.
        public var database = 0
        /// Name shown by `CLIENT LIST` (`HELLO … SETNAME`).
        public var clientName: String?
        /// Longest wait for the TCP connection.
        public var connectTimeout: TimeAmount = .seconds(5)
        /// Longest wait for a reply, unless a command gives its own.
        public var commandTimeout: TimeAmount = .seconds(5)
        /// First wait before reconnecting after a lost or failed connection; doubled per failure.
        public var reconnectDelay: TimeAmount = .milliseconds(100)
        /// Longest wait between reconnection attempts.
        public var maxReconnectDelay: TimeAmount = .seconds(5)
        /// How often waiting commands are checked against their timeouts.
        public var timeoutCheckInterval: TimeAmount = .milliseconds(50)
        /// Size limits for what the server sends.
        public var decoderLimits = RESPDecoder.Limits()

        public init() {}

        /// A configuration from a URL: `redis://[[user]:password@]host[:port][/database]`.
        public init(url: String) throws(RESPURLError) {
            self.init()
            guard url.hasPrefix("redis://") else { throw RESPURLError(url: url, reason: "only redis:// URLs are supported") }
            var rest = Substring(url.dropFirst("redis://".count))
            if let slash = rest.firstIndex(of: "/") {
                let path = rest[rest.index(after: slash)...]
                rest = rest[..<slash]
                if !path.isEmpty {
                    guard let db = Int(path), db >= 0 else { throw RESPURLError(url: url, reason: "the path must be a database number") }
                    database = db
                }
            }
            if let at = rest.lastIndex(of: "@") {
                let credentials = rest[..<at]
                rest = rest[rest.index(after: at)...]
                if let colon = credentials.firstIndex(of: ":") {
                    let user = credentials[..<colon]
                    username = user.isEmpty ? nil : try Self.percentDecoded(user, url: url)
                    password = try Self.percentDecoded(credentials[credentials.index(after: colon)...], url: url)
                } else if !credentials.isEmpty {
                    password = try Self.percentDecoded(credentials, url: url)
                }
            }
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]") else { throw RESPURLError(url: url, reason: "unterminated IPv6 address") }
                host = String(rest[rest.index(after: rest.startIndex)..<close])
                rest = rest[rest.index(after: close)...]
                if rest.hasPrefix(":") {
                    guard let p = Int(rest.dropFirst()), (1...65535).contains(p) else { throw RESPURLError(url: url, reason: "invalid port") }
                    port = p
                } else if !rest.isEmpty {
                    throw RESPURLError(url: url, reason: "invalid host")
                }
            } else if let colon = rest.lastIndex(of: ":") {
                host = String(rest[..<colon])
                guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                    throw RESPURLError(url: url, reason: "invalid port")
                }
                port = p
            } else {
                host = String(rest)
            }
            guard !host.isEmpty else { throw RESPURLError(url: url, reason: "missing host") }
        }

        static func percentDecoded(_ text: Substring, url: String) throws(RESPURLError) -> String {
            var bytes: [UInt8] = []
            var iterator = text.utf8.makeIterator()
            while let byte = iterator.next() {
                if byte == UInt8(ascii: "%") {
                    guard let high = iterator.next(), let low = iterator.next(),
                        let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                    else { throw RESPURLError(url: url, reason: "invalid percent escape") }
                    bytes.append(value)
                } else {
                    bytes.append(byte)
                }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
