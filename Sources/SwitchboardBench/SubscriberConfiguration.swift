import NIOCore

/// What every subscriber connection does: the upgrade request it sends (SSE: the event-stream
/// request), and for Phoenix the join and heartbeat frames. Built once and shared (the buffers are reference counted, not copied).
struct SubscriberConfiguration: Sendable {
    enum WireProtocol: String, Sendable, CaseIterable {
        case v2
        case v1
        case raw
        /// Server-Sent Events: `GET <url>` with `Accept: text/event-stream`; every event's data is a payload.
        case sse
    }

    var wireProtocol: WireProtocol
    var url: BenchURL
    var topic: String
    /// The complete `GET … Upgrade: websocket` request (SSE: `GET … Accept: text/event-stream`).
    var upgradeRequest: ByteBuffer
    /// The unmasked join frame payload (Phoenix only).
    var joinMessage: [UInt8]
    /// Seconds between heartbeats (Phoenix; raw: WebSocket pings); 0 = none.
    var heartbeatInterval: Double
    /// Seconds from TCP connect to a joined channel (raw: to the 101 answer; SSE: to the 200 head).
    var handshakeTimeout: Double
    /// Publisher connections, so deliveries can be checked per connection.
    var publisherConnections: Int
    var maxFrameSize = 16 << 20
    /// Many small topics (nil: every subscriber joins `topic`).
    var topicLayout: TopicLayout?
    /// Share of subscribers that stop reading when the publish phase starts (0 = none).
    var slowFraction: Double
    /// `--user-ids`: subscriber i adds `user_id=u<i>` to its URL's query (one user per
    /// connection, e.g. for presence); nil: every subscriber uses `upgradeRequest` as is.
    var userIDPrefix: String?
    private var joinPayload: String

    init(
        wireProtocol: WireProtocol,
        url: BenchURL,
        topic: String,
        joinPayload: String,
        heartbeatInterval: Double,
        handshakeTimeout: Double,
        publisherConnections: Int,
        topicLayout: TopicLayout? = nil,
        slowFraction: Double = 0,
        userIDPrefix: String? = nil
    ) {
        self.wireProtocol = wireProtocol
        self.url = url
        self.topic = topic
        self.joinPayload = joinPayload
        self.topicLayout = topicLayout
        self.slowFraction = slowFraction
        self.userIDPrefix = userIDPrefix
        self.heartbeatInterval = heartbeatInterval
        self.handshakeTimeout = handshakeTimeout
        self.publisherConnections = publisherConnections
        upgradeRequest = Self.upgradeRequest(wireProtocol, url: url)
        joinMessage = Self.joinMessage(wireProtocol, topic: topic, ref: 1, payload: joinPayload)
    }

    /// The request subscriber `index` sends: the shared one, or with `--user-ids` one whose URL
    /// names its own user (`user_id=u<index>`).
    func upgradeRequest(index: Int) -> ByteBuffer {
        guard let userIDPrefix else { return upgradeRequest }
        return Self.upgradeRequest(wireProtocol, url: url.addingQueryItem("user_id", "\(userIDPrefix)\(index)"))
    }

    private static func upgradeRequest(_ wireProtocol: WireProtocol, url: BenchURL) -> ByteBuffer {
        // A fixed key is fine: the bench does not verify Sec-WebSocket-Accept, and the server
        // only has to echo a hash of it.
        var request = ByteBuffer()
        if wireProtocol == .sse {
            request.writeString(
                "GET \(url.target) HTTP/1.1\r\nHost: \(url.hostHeader)\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
                    + "User-Agent: switchboard-bench\r\n\r\n"
            )
        } else {
            request.writeString(
                "GET \(url.target) HTTP/1.1\r\nHost: \(url.hostHeader)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: c3dpdGNoYm9hcmQtYmVuY2g=\r\nSec-WebSocket-Version: 13\r\nUser-Agent: switchboard-bench\r\n\r\n"
            )
        }
        return request
    }

    /// Whether subscriber `index` is a slow consumer: those with ⌊(i+1)·F⌋ > ⌊i·F⌋, which spreads
    /// ⌊N·F⌋ of N evenly (F = 0.01: subscribers 99, 199, 299, …).
    func isSlow(index: Int) -> Bool {
        slowFraction > 0 && (Double(index + 1) * slowFraction).rounded(.down) > (Double(index) * slowFraction).rounded(.down)
    }

    /// The unmasked join frame payloads subscriber `index` sends, one per topic it joins (with
    /// topic groups: its personal topic with ref 1, then its group's with ref 2).
    func joinMessages(index: Int) -> [[UInt8]] {
        guard let layout = topicLayout else { return [joinMessage] }
        return [layout.personalTopic(ofSubscriber: index), layout.groupTopic(ofSubscriber: index)].enumerated().map { offset, topic in
            Self.joinMessage(wireProtocol, topic: layout.name(of: topic), ref: offset + 1, payload: joinPayload)
        }
    }

    private static func joinMessage(_ wireProtocol: WireProtocol, topic: String, ref: Int, payload: String) -> [UInt8] {
        let topicJSON = JSONText.string(topic)
        switch wireProtocol {
        case .v2:
            return Array("[\"\(ref)\",\"\(ref)\",\(topicJSON),\"phx_join\",\(payload)]".utf8)
        case .v1:
            return Array("{\"topic\":\(topicJSON),\"event\":\"phx_join\",\"payload\":\(payload),\"ref\":\"\(ref)\",\"join_ref\":\"\(ref)\"}".utf8)
        case .raw, .sse:
            return []
        }
    }

    /// A Phoenix heartbeat with `ref`.
    func heartbeatMessage(ref: Int) -> [UInt8] {
        switch wireProtocol {
        case .v2: return Array("[null,\"\(ref)\",\"phoenix\",\"heartbeat\",{}]".utf8)
        case .v1: return Array("{\"topic\":\"phoenix\",\"event\":\"heartbeat\",\"payload\":{},\"ref\":\"\(ref)\"}".utf8)
        case .raw, .sse: return []
        }
    }
}
