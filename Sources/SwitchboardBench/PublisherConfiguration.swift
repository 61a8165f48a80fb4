/// How messages are published: over HTTP/1.1 keep-alive connections, at a fixed rate or as
/// fast as the bounded number of in-flight requests allows.
struct PublisherConfiguration: Sendable {
    /// What fills the gap between two body parts.
    enum BodySlot: Sendable {
        case payload
        /// The message's topic (topic groups only; otherwise `{{topic}}` is replaced up front).
        case topic
    }

    var url: BenchURL
    /// The body template split at each `{{payload}}` (and with topic groups each `{{topic}}`):
    /// n placeholders give n + 1 parts.
    var bodyParts: [[UInt8]]
    /// `bodySlots[k]` goes between `bodyParts[k]` and `bodyParts[k + 1]`.
    var bodySlots: [BodySlot]
    /// Bytes of the fixed parts, and how many slots of each kind there are.
    var bodyPartsLength: Int
    var payloadSlots: Int
    var topicSlots: Int
    /// Many small topics: each message goes to a topic the publisher picks (nil: to `topic`).
    var topicLayout: TopicLayout?
    /// With topic groups, every topic's name as it goes into the body (JSON string content).
    var topicNames: [[UInt8]]
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

    init(
        url: BenchURL,
        bodyTemplate: String,
        topic: String,
        apiKey: String?,
        contentType: String,
        rate: Double,
        duration: Double,
        messageLimit: Int?,
        connections: Int,
        pipeline: Int,
        payloadSize: Int,
        responseTimeout: Double,
        connectTimeout: Double,
        topicLayout: TopicLayout? = nil
    ) throws {
        func jsonContent(_ text: String) -> String { String(JSONText.string(text).dropFirst().dropLast()) }
        if let topicLayout {
            (bodyParts, bodySlots) = bodyTemplate.splitAtPlaceholders()
            topicNames = (0..<topicLayout.topicCount).map { Array(jsonContent(topicLayout.name(of: $0)).utf8) }
        } else {
            bodyParts = bodyTemplate.replacingTopic(jsonContent(topic)).split(separator: "{{payload}}", omittingEmptySubsequences: false).map {
                Array($0.utf8)
            }
            bodySlots = Array(repeating: .payload, count: bodyParts.count - 1)
            topicNames = []
        }
        payloadSlots = bodySlots.filter { $0 == .payload }.count
        topicSlots = bodySlots.count - payloadSlots
        bodyPartsLength = bodyParts.reduce(0) { $0 + $1.count }
        self.topicLayout = topicLayout
        guard payloadSlots >= 1 else {
            throw BenchError("--publish-body must contain {{payload}}")
        }
        if topicLayout != nil, topicSlots == 0 {
            throw BenchError("--topic-groups needs {{topic}} in --publish-body (each message names its own topic)")
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
    /// The text split at every `{{payload}}` and `{{topic}}`, with which one each gap was.
    fileprivate func splitAtPlaceholders() -> ([[UInt8]], [PublisherConfiguration.BodySlot]) {
        var parts: [[UInt8]] = []
        var slots: [PublisherConfiguration.BodySlot] = []
        var rest = Substring(self)
        while true {
            let payload = rest.firstRange(of: "{{payload}}")
            let topic = rest.firstRange(of: "{{topic}}")
            let next: (Range<Substring.Index>, PublisherConfiguration.BodySlot)
            switch (payload, topic) {
            case (nil, nil):
                return (parts + [Array(rest.utf8)], slots)
            case (let payload?, let topic?):
                next = payload.lowerBound < topic.lowerBound ? (payload, .payload) : (topic, .topic)
            case (let payload?, nil):
                next = (payload, .payload)
            case (nil, let topic?):
                next = (topic, .topic)
            }
            parts.append(Array(rest[..<next.0.lowerBound].utf8))
            slots.append(next.1)
            rest = rest[next.0.upperBound...]
        }
    }

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
