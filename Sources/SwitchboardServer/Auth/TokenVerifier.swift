import Foundation
import JWTKit
import NIOCore
import Switchboard

/// What a valid connection token says about its bearer.
struct VerifiedToken: Sendable, Equatable {
    /// The `sub` claim: the user id.
    let subject: String
    /// The topic patterns of the topics claim (`["chat:*", "ticker"]`); `nil` when the token has none.
    let topics: [String]?
    /// The `exp` claim.
    let expiresAt: Date?

    /// Whether the topics claim allows `topic` (a token without the claim allows nothing here;
    /// the namespaces decide what such a token may join).
    func allows(topic: String) -> Bool {
        topics?.contains { topicPattern($0, allows: topic) } ?? false
    }
}

/// Why a token was refused. `reason` is what the client reads in the 403 body.
enum TokenRejection: Error, Equatable {
    case malformed(String)
    case wrongAlgorithm(found: String, expected: String)
    case badSignature
    case expired
    case notYetValid
    case missingExpiry
    case missingSubject

    var reason: String {
        switch self {
        case .malformed(let detail): return "invalid token: malformed (\(detail))"
        case .wrongAlgorithm(let found, let expected): return "invalid token: algorithm \(found) is not accepted (expected \(expected))"
        case .badSignature: return "invalid token: signature does not verify"
        case .expired: return "invalid token: expired"
        case .notYetValid: return "invalid token: not valid yet (nbf)"
        case .missingExpiry: return "invalid token: no exp claim"
        case .missingSubject: return "invalid token: no sub claim"
        }
    }
}

/// Verifies connection tokens (JWTs, compact form) with the one configured key: HS256 with a shared
/// secret, RS256 or ES256 with a public key. The header's `alg` must be that algorithm (so an RSA
/// public key is never used as an HMAC secret); `exp` is enforced, `nbf` too when present.
struct TokenVerifier: Sendable {
    let algorithm: JWTConfiguration.Algorithm
    let keys: JWTKeyCollection
    let configuration: JWTConfiguration
    /// The clock (injected in tests).
    let now: @Sendable () -> Date

    /// Builds the verifier for `configuration`'s key; `nil` when no key is configured.
    static func make(
        _ configuration: JWTConfiguration,
        now: @escaping @Sendable () -> Date = { Date() }
    ) async throws(ConfigurationError) -> TokenVerifier? {
        guard configuration.isEnabled else { return nil }
        let keys = JWTKeyCollection()
        let algorithm: JWTConfiguration.Algorithm
        if let secret = configuration.secret {
            guard configuration.publicKey == nil, configuration.publicKeyFile == nil else {
                throw ConfigurationError("jwt: give either a secret (HS256) or a public key (RS256, ES256), not both")
            }
            if let configured = configuration.algorithm, configured != .hs256 {
                throw ConfigurationError("jwt: a secret is for HS256, but the algorithm is \(configured.rawValue) (give a public key for it)")
            }
            // RFC 7518 3.2: an HS256 key is at least as long as the hash (jwt-kit asserts it too).
            guard secret.utf8.count >= 32 else { throw ConfigurationError("jwt: the HS256 secret must be at least 32 bytes long") }
            algorithm = .hs256
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        } else {
            let pem: String
            if let text = configuration.publicKey {
                pem = text
            } else if let path = configuration.publicKeyFile {
                do {
                    pem = try String(contentsOfFile: path, encoding: .utf8)
                } catch {
                    throw ConfigurationError("jwt: cannot read the public key file \(path) (\(error.localizedDescription))")
                }
            } else {
                return nil
            }
            let rsa = try? Insecure.RSA.PublicKey(pem: pem)
            let ec = try? ES256PublicKey(pem: pem)
            switch (configuration.algorithm, rsa, ec) {
            case (.hs256, _, _):
                throw ConfigurationError("jwt: HS256 needs a secret, not a public key")
            case (.rs256, let rsa?, _), (nil, let rsa?, _):
                algorithm = .rs256
                await keys.add(rsa: rsa, digestAlgorithm: .sha256)
            case (.es256, _, let ec?), (nil, nil, let ec?):
                algorithm = .es256
                await keys.add(ecdsa: ec)
            case (.rs256, nil, _):
                throw ConfigurationError("jwt: RS256 needs an RSA public key in PEM form (-----BEGIN PUBLIC KEY-----, at least 2048 bits)")
            case (.es256, _, nil):
                throw ConfigurationError("jwt: ES256 needs a P-256 EC public key in PEM form (-----BEGIN PUBLIC KEY-----)")
            case (nil, nil, nil):
                throw ConfigurationError("jwt: the public key is neither an RSA (2048 bits or more) nor a P-256 EC public key in PEM form")
            }
        }
        return TokenVerifier(algorithm: algorithm, keys: keys, configuration: configuration, now: now)
    }

    /// Checks `token` and returns what it says, or why it is refused.
    func verify(_ token: String) async -> Result<VerifiedToken, TokenRejection> {
        // The header first: a token that is not three base64url parts, or is signed with another
        // algorithm, is refused with that reason before any signature work.
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(.malformed("not three dot-separated parts")) }
        guard let headerBytes = Self.base64URLDecode(parts[0]), let header = try? JSONParser.parse(ByteBuffer(bytes: headerBytes)) else {
            return .failure(.malformed("the header is not base64url-encoded JSON"))
        }
        guard let alg = header["alg"]?.stringValue else { return .failure(.malformed("the header has no alg")) }
        guard alg == algorithm.rawValue else { return .failure(.wrongAlgorithm(found: alg, expected: algorithm.rawValue)) }
        guard Self.base64URLDecode(parts[1]) != nil, Self.base64URLDecode(parts[2]) != nil else {
            return .failure(.malformed("the payload or signature is not base64url"))
        }

        let claims: TokenClaims
        do {
            claims = try await keys.verify(token, as: TokenClaims.self)
        } catch let error as JWTError {
            switch error.errorType {
            case .signatureVerificationFailed: return .failure(.badSignature)
            case .malformedToken: return .failure(.malformed(error.reason ?? "unreadable"))
            default: return .failure(.malformed(error.reason ?? "\(error.errorType)"))
            }
        } catch is DecodingError {
            return .failure(.malformed("the claims are not a JSON object of the expected types"))
        } catch {
            return .failure(.malformed("\(error)"))
        }

        let leeway = TimeInterval(configuration.leewaySeconds)
        let now = self.now()
        if let exp = claims.exp {
            guard now < exp.addingTimeInterval(leeway) else { return .failure(.expired) }
        } else if configuration.requireExpiry {
            return .failure(.missingExpiry)
        }
        if let nbf = claims.nbf, now < nbf.addingTimeInterval(-leeway) {
            return .failure(.notYetValid)
        }
        guard let subject = claims.sub, !subject.isEmpty else { return .failure(.missingSubject) }
        return .success(VerifiedToken(subject: subject, topics: claims.lists[configuration.topicsClaim], expiresAt: claims.exp))
    }

    /// Decodes base64url without padding (as in JWTs); `nil` for other characters.
    static func base64URLDecode(_ text: Substring) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !base64.contains("=") else { return nil }
        let remainder = base64.count % 4
        if remainder == 1 { return nil }
        if remainder > 0 { base64 += String(repeating: "=", count: 4 - remainder) }
        return Data(base64Encoded: base64).map { [UInt8]($0) }
    }
}
