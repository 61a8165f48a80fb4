import Testing

@testable import Switchboard

@Suite("Origin policy")
struct OriginPolicyTests {
    @Test("no Origin header is always allowed; .any allows everything")
    func basics() {
        #expect(OriginPolicy.allowList(["https://example.com"]).allows(origin: nil))
        #expect(OriginPolicy.any.allows(origin: "https://evil.example"))
        #expect(OriginPolicy.custom { $0.hasSuffix(".test") }.allows(origin: "http://a.test"))
        #expect(!OriginPolicy.custom { $0.hasSuffix(".test") }.allows(origin: "http://a.example"))
    }

    @Test(
        "allow-list patterns: scheme, host, port and wildcard subdomains",
        arguments: [
            ("https://example.com", "https://example.com", true),
            ("https://example.com", "https://EXAMPLE.com:443", true),
            ("https://example.com", "http://example.com", false),
            ("https://example.com", "https://example.com:8443", false),
            ("https://example.com", "https://evil.example", false),
            ("https://example.com", "https://example.com.evil.example", false),
            ("//another.com:888", "http://another.com:888", true),
            ("//another.com:888", "https://another.com:888", true),
            ("//another.com:888", "https://another.com", false),
            ("//*.other.com", "https://other.com", true),
            ("//*.other.com", "https://a.b.other.com:1234", true),
            ("//*.other.com", "https://notother.com", false),
            ("https://example.com", "null", false),
            ("https://example.com", "", false),
        ]
    )
    func allowList(pattern: String, origin: String, allowed: Bool) {
        #expect(OriginPolicy.allowList([pattern]).allows(origin: origin) == allowed)
    }
}
