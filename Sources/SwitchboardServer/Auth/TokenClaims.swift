import Foundation
import JWTKit

/// The claims of a connection token that the server reads: `sub`, `exp`, `nbf`, and every claim
/// that is a list of strings (or a single string), so that the topics claim's name can be
/// configured. Time claims are checked by `TokenVerifier` (with the configured leeway), not here.
struct TokenClaims: JWTPayload {
    var sub: String?
    var exp: Date?
    var nbf: Date?
    /// Claims whose value is a string or a list of strings, by name.
    var lists: [String: [String]] = [:]

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(sub: String?, exp: Date?, nbf: Date? = nil, lists: [String: [String]] = [:]) {
        self.sub = sub
        self.exp = exp
        self.nbf = nbf
        self.lists = lists
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys {
            switch key.stringValue {
            case "sub":
                // A numeric subject is read as its decimal text.
                if let text = try? container.decode(String.self, forKey: key) {
                    sub = text
                } else {
                    sub = String(try container.decode(Int64.self, forKey: key))
                }
            case "exp":
                exp = Date(timeIntervalSince1970: try container.decode(Double.self, forKey: key))
            case "nbf":
                nbf = Date(timeIntervalSince1970: try container.decode(Double.self, forKey: key))
            default:
                if let list = try? container.decode([String].self, forKey: key) {
                    lists[key.stringValue] = list
                } else if let single = try? container.decode(String.self, forKey: key) {
                    lists[key.stringValue] = [single]
                }
            }
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encodeIfPresent(sub, forKey: Key(stringValue: "sub"))
        try container.encodeIfPresent(exp.map { Int64($0.timeIntervalSince1970) }, forKey: Key(stringValue: "exp"))
        try container.encodeIfPresent(nbf.map { Int64($0.timeIntervalSince1970) }, forKey: Key(stringValue: "nbf"))
        for (name, list) in lists {
            try container.encode(list, forKey: Key(stringValue: name))
        }
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
