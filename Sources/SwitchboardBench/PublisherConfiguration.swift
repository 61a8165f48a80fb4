/// How messages are published: over HTTP/1.1 keep-alive connections, at a fixed rate or as
/// fast as the bounded number of in-flight requests allows.
struct PublisherConfiguration: Sendable {
    var url: BenchURL
    /// The body template split at each `{{payload}}` (n placeholders give n + 1 parts).
    var bodyParts: [[UInt8]]
    /// `POST <target> HTTP/1.1` and the fixed headers, up to and including `Content-Length: `.
    var requestHead: [UInt8]
    /// Messages per second; 0 = as fast as possible.
    var rate: Double
    var duration: Double
    /// Stop after this many messages (nil = only the duration bounds the phase).
    var messageLimit: Int?
    var connections: Int
    /// Requests in flight per connection (1 = no pipelining).
    var pipeline: Int
    var payloadSize: Int
    /// Seconds to wait for the answers still outstanding when the publish phase ends.
    var responseTimeout: Double
    var connectTimeout: Double

    init(url: BenchURL, bodyTemplate: String, topic: String, apiKey: String?, contentType: String, rate: Double, duration: Double, messageLimit: Int?, connections: Int, pipeline: Int, payloadSize: Int, responseTimeout: Double, connectTimeout: Double) throws {
        let topicText = String(JSONText.string(topic).dropFirst().dropLast())
        bodyParts = bodyTemplate.replacingTopic(topicText).split(separator: "{{payload}}", omittingEmptySubsequences: false).map { Array($0.utf8) }
        guard bodyParts.count >= 2 else {
            throw BenchError("--publish-body must contain {{payload}}")
        }
        var head = "POST \(url.target) HTTP/1.1\r\nHost: \(url.hostHeader)\r\nContent-Type: \(contentType)\r\nUser-Agent: switchboard-bench\r\n"
        if let apiKey, !apiKey.isEmpty { head += "Authorization: Bearer \(apiKey)\r\n" }
        head += "Content-Length: "
        requestHead = Array(head.utf8)
        self.url = url
        self.rate = rate
        self.duration = duration
        self.messageLimit = messageLimit
        self.connections = connections
        self.pipeline = pipeline
        self.payloadSize = payloadSize
        self.responseTimeout = responseTimeout
        self.connectTimeout = connectTimeout
    }
}

extension StringProtocol {
    fileprivate func replacingTopic(_ topic: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: "{{topic}}") {
            out += rest[..<range.lowerBound]
            out += topic
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
