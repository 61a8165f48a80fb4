import Foundation
import JWTKit
import Switchboard
import Testing

@testable import SwitchboardServer

/// Signs tokens for the tests.
func sign(_ claims: TokenClaims, with keys: JWTKeyCollection, header: JWTHeader = JWTHeader()) async throws -> String {
    try await keys.sign(claims, header: header)
}

func hmacKeys(_ secret: String, _ digest: DigestAlgorithm = .sha256) async -> JWTKeyCollection {
    await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: digest)
}

/// A fixed clock: 2026-01-01T00:00:00Z.
let testNow = Date(timeIntervalSince1970: 1_767_225_600)

func hs256Verifier(
    _ secret: String = "test-secret-0123456789abcdefghijklmnop",
    requireExpiry: Bool = true,
    leeway: Int = 0
) async throws -> TokenVerifier {
    var configuration = JWTConfiguration()
    configuration.secret = secret
    configuration.requireExpiry = requireExpiry
    configuration.leewaySeconds = leeway
    return try #require(try await TokenVerifier.make(configuration, now: { testNow }))
}

@Suite("Namespaces")
struct NamespaceTests {
    @Test("an exact topic wins over a prefix, a longer prefix over a shorter one, whatever the order given")
    func specificity() {
        let table = NamespaceTable([
            Namespace(pattern: "chat:*"),
            Namespace(pattern: "chat:vip:*", join: .token),
            Namespace(pattern: "chat:lobby", clientPublish: true),
        ])
        #expect(table.namespace(of: "chat:lobby")?.pattern == "chat:lobby")
        #expect(table.namespace(of: "chat:vip:1")?.pattern == "chat:vip:*")
        #expect(table.namespace(of: "chat:other")?.pattern == "chat:*")
        #expect(table.namespace(of: "chat") == nil)
        #expect(table.namespace(of: "news:1") == nil)
    }

    @Test("the built-in set is the demo's: room:*, ticker, notifications:*, realtime:*, public:*, online, feed:* (history)")
    func builtIn() {
        let table = NamespaceTable.builtIn
        #expect(table.isBuiltIn)
        #expect(Set(table.namespaces.map(\.pattern)) == ["room:*", "ticker", "notifications:*", "realtime:*", "public:*", "online", "feed:*"])
        #expect(table.namespace(of: "feed:news")?.historyPolicy == HistoryPolicy(size: 100, ttl: .seconds(300), maxRecover: 1000))
        #expect(table.namespace(of: "room:lobby")?.historyPolicy == nil)
        #expect(table.namespace(of: "room:lobby")?.behaviour == .chat)
        #expect(table.namespace(of: "notifications:42")?.join == .owner)
        #expect(table.namespace(of: "public:prices")?.clientPublish == false)
        #expect(table.namespace(of: "tickers") == nil)
    }

    @Test("topic patterns of a token's claim")
    func patterns() {
        #expect(topicPattern("chat:*", allows: "chat:1"))
        #expect(!topicPattern("chat:*", allows: "news:1"))
        #expect(topicPattern("ticker", allows: "ticker"))
        #expect(!topicPattern("ticker", allows: "tickers"))
        #expect(topicPattern("*", allows: "anything"))
    }
}

@Suite("Join rules")
struct JoinRuleTests {
    let access = ServerAccess(
        namespaces: NamespaceTable([
            Namespace(pattern: "open:*", join: .anyone),
            Namespace(pattern: "members:*", join: .authenticated),
            Namespace(pattern: "granted:*", join: .token),
            Namespace(pattern: "inbox:*", join: .owner),
        ]),
        verifier: nil,
        allowAnonymous: true,
        originPolicy: .any
    )
    let anonymous = ConnectionIdentity()
    let alice = ConnectionIdentity(userID: "alice", token: VerifiedToken(subject: "alice", topics: nil, expiresAt: nil))
    let scoped = ConnectionIdentity(userID: "bob", token: VerifiedToken(subject: "bob", topics: ["granted:b", "inbox:*", "open:x"], expiresAt: nil))

    @Test("anyone, authenticated, token, owner; unknown namespaces")
    func rules() {
        #expect(access.mayJoin(topic: "open:1", identity: anonymous) == .allowed(Namespace(pattern: "open:*", join: .anyone)))
        #expect(access.mayJoin(topic: "members:1", identity: anonymous) == .refused("unauthorized: a valid token is required"))
        #expect(access.mayJoin(topic: "members:1", identity: alice) == .allowed(Namespace(pattern: "members:*", join: .authenticated)))
        #expect(access.mayJoin(topic: "granted:a", identity: alice) == .refused("topic not allowed by token"))
        #expect(access.mayJoin(topic: "granted:b", identity: scoped) == .allowed(Namespace(pattern: "granted:*", join: .token)))
        #expect(access.mayJoin(topic: "inbox:alice", identity: alice) == .allowed(Namespace(pattern: "inbox:*", join: .owner)))
        #expect(access.mayJoin(topic: "inbox:bob", identity: alice) == .refused("unauthorized"))
        #expect(access.mayJoin(topic: "inbox:bob", identity: anonymous) == .refused("unauthorized"))
        #expect(access.mayJoin(topic: "nowhere:1", identity: alice) == .unknownNamespace)
    }

    @Test("a token that lists topics restricts every namespace")
    func claimRestricts() {
        #expect(access.mayJoin(topic: "open:x", identity: scoped) == .allowed(Namespace(pattern: "open:*", join: .anyone)))
        #expect(access.mayJoin(topic: "open:y", identity: scoped) == .refused("topic not allowed by token"))
        #expect(access.mayJoin(topic: "inbox:bob", identity: scoped) == .allowed(Namespace(pattern: "inbox:*", join: .owner)))
    }

    @Test("connect without JWT: the user_id param names the user, anonymous is allowed")
    func connectWithoutJWT() async {
        if case .accept(let id, let assigns) = await access.connect(ConnectRequest(params: ["user_id": "7"])) {
            #expect(id == "user_socket:7")
            #expect(ConnectionIdentity(assigns: assigns) == ConnectionIdentity(userID: "7"))
        } else {
            Issue.record("refused")
        }
        if case .accept(let id, _) = await access.connect(ConnectRequest()) {
            #expect(id == nil)
        } else {
            Issue.record("refused")
        }
    }

    @Test("connect with JWT: token param or authToken; user_id param ignored; bad token refused with its reason")
    func connectWithJWT() async throws {
        let verifier = try await hs256Verifier()
        let access = ServerAccess(namespaces: .builtIn, verifier: verifier, allowAnonymous: true, originPolicy: .any)
        let keys = await hmacKeys("test-secret-0123456789abcdefghijklmnop")
        let token = try await sign(TokenClaims(sub: "42", exp: testNow + 60), with: keys)
        for request in [ConnectRequest(params: ["token": token, "user_id": "7"]), ConnectRequest(authToken: token)] {
            guard case .accept(let id, let assigns) = await access.connect(request) else {
                Issue.record("refused")
                continue
            }
            #expect(id == "user_socket:42")
            #expect(ConnectionIdentity(assigns: assigns).userID == "42")
        }
        guard case .accept(nil, let assigns) = await access.connect(ConnectRequest(params: ["user_id": "7"])) else {
            Issue.record("anonymous refused")
            return
        }
        #expect(ConnectionIdentity(assigns: assigns) == ConnectionIdentity())
        guard case .refuse(403, let reason) = await access.connect(ConnectRequest(params: ["token": "garbage"])) else {
            Issue.record("garbage accepted")
            return
        }
        #expect(reason == "invalid token: malformed (not three dot-separated parts)")

        let strict = ServerAccess(namespaces: .builtIn, verifier: verifier, allowAnonymous: false, originPolicy: .any)
        guard case .refuse(403, "a token is required") = await strict.connect(ConnectRequest()) else {
            Issue.record("anonymous accepted although allow_anonymous is false")
            return
        }
    }
}

@Suite("JWT verification")
struct TokenVerifierTests {
    @Test("a valid HS256 token: sub, exp and the topics claim")
    func valid() async throws {
        let verifier = try await hs256Verifier()
        let token = try await sign(
            TokenClaims(sub: "u1", exp: testNow + 60, lists: ["channels": ["chat:*"], "other": ["x"]]),
            with: await hmacKeys("test-secret-0123456789abcdefghijklmnop")
        )
        let result = await verifier.verify(token)
        #expect(result == .success(VerifiedToken(subject: "u1", topics: ["chat:*"], expiresAt: testNow + 60)))
    }

    @Test("refusals and their reasons")
    func refusals() async throws {
        let verifier = try await hs256Verifier()
        let keys = await hmacKeys("test-secret-0123456789abcdefghijklmnop")
        let expired = try await sign(TokenClaims(sub: "u", exp: testNow - 1), with: keys)
        #expect(await verifier.verify(expired) == .failure(.expired))
        #expect(TokenRejection.expired.reason == "invalid token: expired")
        let forged = try await sign(TokenClaims(sub: "u", exp: testNow + 60), with: await hmacKeys("another-secret-0123456789abcdefghijklm"))
        #expect(await verifier.verify(forged) == .failure(.badSignature))
        let hs512 = try await sign(TokenClaims(sub: "u", exp: testNow + 60), with: await hmacKeys(String(repeating: "k", count: 64), .sha512))
        #expect(await verifier.verify(hs512) == .failure(.wrongAlgorithm(found: "HS512", expected: "HS256")))
        let noExp = try await sign(TokenClaims(sub: "u", exp: nil), with: keys)
        #expect(await verifier.verify(noExp) == .failure(.missingExpiry))
        let noSub = try await sign(TokenClaims(sub: nil, exp: testNow + 60), with: keys)
        #expect(await verifier.verify(noSub) == .failure(.missingSubject))
        let early = try await sign(TokenClaims(sub: "u", exp: testNow + 120, nbf: testNow + 60), with: keys)
        #expect(await verifier.verify(early) == .failure(.notYetValid))
        #expect(await verifier.verify("a.b") == .failure(.malformed("not three dot-separated parts")))
        #expect(await verifier.verify("!!.e30.sig") == .failure(.malformed("the header is not base64url-encoded JSON")))
        // alg "none": refused for its algorithm before anything else.
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0."
        #expect(await verifier.verify(none) == .failure(.wrongAlgorithm(found: "none", expected: "HS256")))
    }

    @Test("leeway and require_exp: false")
    func options() async throws {
        let keys = await hmacKeys("test-secret-0123456789abcdefghijklmnop")
        let justExpired = try await sign(TokenClaims(sub: "u", exp: testNow - 3), with: keys)
        #expect(await (try hs256Verifier(leeway: 5)).verify(justExpired).map(\.subject) == .success("u"))
        let noExp = try await sign(TokenClaims(sub: "u", exp: nil), with: keys)
        #expect(await (try hs256Verifier(requireExpiry: false)).verify(noExp).map(\.subject) == .success("u"))
    }

    @Test("ES256 with a public key in PEM form; the algorithm follows the key's type")
    func es256() async throws {
        let privateKey = ES256PrivateKey()
        var configuration = JWTConfiguration()
        configuration.publicKey = privateKey.publicKey.pemRepresentation
        let verifier = try #require(try await TokenVerifier.make(configuration, now: { testNow }))
        #expect(verifier.algorithm == .es256)
        let signer = await JWTKeyCollection().add(ecdsa: privateKey)
        let token = try await signer.sign(TokenClaims(sub: "e", exp: testNow + 60))
        #expect(await verifier.verify(token).map(\.subject) == .success("e"))
        let other = await JWTKeyCollection().add(ecdsa: ES256PrivateKey())
        #expect(await verifier.verify(try await other.sign(TokenClaims(sub: "e", exp: testNow + 60))) == .failure(.badSignature))
        let hs = try await sign(TokenClaims(sub: "e", exp: testNow + 60), with: await hmacKeys(String(repeating: "x", count: 32)))
        #expect(await verifier.verify(hs) == .failure(.wrongAlgorithm(found: "HS256", expected: "ES256")))
    }

    @Test("configuration mistakes are refused at start")
    func badConfiguration() async throws {
        var short = JWTConfiguration()
        short.secret = "too-short"
        let error = await #expect(throws: ConfigurationError.self) { try await TokenVerifier.make(short) }
        #expect(error?.message == "jwt: the HS256 secret must be at least 32 bytes long")
        var both = JWTConfiguration()
        both.secret = String(repeating: "s", count: 32)
        both.publicKey = ES256PrivateKey().publicKey.pemRepresentation
        await #expect(throws: ConfigurationError.self) { try await TokenVerifier.make(both) }
        var mismatch = JWTConfiguration()
        mismatch.secret = String(repeating: "s", count: 32)
        mismatch.algorithm = .rs256
        await #expect(throws: ConfigurationError.self) { try await TokenVerifier.make(mismatch) }
        var notAKey = JWTConfiguration()
        notAKey.publicKey = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        await #expect(throws: ConfigurationError.self) { try await TokenVerifier.make(notAKey) }
        var ecAsRSA = JWTConfiguration()
        ecAsRSA.publicKey = ES256PrivateKey().publicKey.pemRepresentation
        ecAsRSA.algorithm = .rs256
        await #expect(throws: ConfigurationError.self) { try await TokenVerifier.make(ecAsRSA) }
        #expect(try await TokenVerifier.make(JWTConfiguration()) == nil)
    }
}
