import Foundation

/// Query-string helpers.
public enum QueryString {
    /// Splits a request URI into its path and query.
    public static func split(uri: String) -> (path: String, query: String) {
        guard let q = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<q]), String(uri[uri.index(after: q)...]))
    }

    /// Parses `a=1&b=2` into ordered, percent-decoded pairs (`+` is a space; empty segments skipped).
    public static func parse(_ query: String) -> [(name: String, value: String)] {
        query.split(separator: "&").compactMap { segment in
            let parts = segment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let rawName = parts.first, !rawName.isEmpty else { return nil }
            func decode(_ s: Substring) -> String {
                let spaced = s.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            return (decode(rawName), parts.count > 1 ? decode(parts[1]) : "")
        }
    }
}
