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

    init(wireProtocol: WireProtocol, url: BenchURL, topic: String, joinPayload: String, heartbeatInterval: Double, handshakeTimeout: Double, publisherConnections: Int) {
        self.wireProtocol = wireProtocol
        self.url = url
        self.topic = topic
        self.heartbeatInterval = heartbeatInterval
        self.handshakeTimeout = handshakeTimeout
        self.publisherConnections = publisherConnections
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
        upgradeRequest = request
        let topicJSON = JSONText.string(topic)
        switch wireProtocol {
        case .v2:
            joinMessage = Array("[\"1\",\"1\",\(topicJSON),\"phx_join\",\(joinPayload)]".utf8)
        case .v1:
            joinMessage = Array("{\"topic\":\(topicJSON),\"event\":\"phx_join\",\"payload\":\(joinPayload),\"ref\":\"1\",\"join_ref\":\"1\"}".utf8)
        case .raw, .sse:
            joinMessage = []
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
