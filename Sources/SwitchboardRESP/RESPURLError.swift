/// A Redis URL that could not be understood.
public struct RESPURLError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The URL as given (it may contain a password: do not log it).
    public var url: String
    /// What is wrong with it.
    public var reason: String

    public init(url: String, reason: String) {
        self.url = url
        self.reason = reason
    }

    public var description: String { "invalid Redis URL: \(reason)" }
}
