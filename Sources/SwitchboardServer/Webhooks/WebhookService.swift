import AsyncHTTPClient
import Crypto
import DequeModule
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Switchboard
import Synchronization

/// Sends presence lifecycle events (`topic.occupied`, `topic.vacated`, `member.joined`,
/// `member.left`) to the configured webhooks, off the delivery path.
///
/// - Each node POSTs the events it announces (the node where the change happened; for a node
///   that died, the live node with the smallest id), so a cluster event is sent once.
/// - Per receiver, a bounded queue (`queue_size`, default 10 000; new events beyond it are
///   dropped, counted in `switchboard_webhook_events_dropped_total` and logged) and one POST at
///   a time of up to 100 events, oldest first, so the events of a topic arrive in order.
/// - A failed POST (not 2xx, no answer within `timeout_seconds`, no connection) is sent again
///   after 0.5 s, 1 s, 2 s, 4 s, then every 8 s, with the same events and ids (receivers
///   deduplicate by `id`).
/// - Body `{"events":[{"id","type","topic","key","time"}]}` (key null for topic events, time in
///   Unix milliseconds); header `X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the body>`.
struct WebhookService: Service {
    let hub: Hub
    let webhooks: [Webhook]
    /// The pattern of a topic's namespace (for the receivers' `namespaces` filter).
    let namespaceOf: @Sendable (String) -> String?
    let logger: Logger
    var client: HTTPClient = .shared

    static let dropped = Counter(label: "switchboard_webhook_events_dropped_total")
    static let delivered = Counter(label: "switchboard_webhook_events_delivered_total")
    static let failedPosts = Counter(label: "switchboard_webhook_posts_failed_total")

    func run() async throws {
        let queues = webhooks.map(WebhookQueue.init)
        let events = hub.presence.events()
        let ids = IDSource(node: hub.nodeID)
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await event in events {
                    let pattern = namespaceOf(event.topic)
                    let record = WebhookEvent(id: ids.next(), event: event)
                    for queue in queues where queue.webhook.wants(event.kind, namespace: pattern) {
                        if !queue.offer(record) { drop(record, at: queue) }
                    }
                }
            }
            for queue in queues {
                group.addTask { await deliver(queue) }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    private func drop(_ event: WebhookEvent, at queue: WebhookQueue) {
        Self.dropped.increment()
        if queue.noteDrop() {
            logger.warning(
                "webhook queue full: events dropped until the receiver catches up",
                metadata: ["webhook.url": "\(queue.webhook.url)", "webhook.queue_size": "\(queue.webhook.queueSize)"]
            )
        }
    }

    /// POSTs the queue's events, oldest first, until cancelled.
    private func deliver(_ queue: WebhookQueue) async {
        var wakeUps = queue.wakeUps.makeAsyncIterator()
        var failures = 0
        while !Task.isCancelled {
            let batch = queue.peek(Webhook.maxBatch)
            guard !batch.isEmpty else {
                guard await wakeUps.next() != nil else { return }
                continue
            }
            let body = WebhookEvent.body(of: batch)
            if let problem = await post(body, to: queue.webhook) {
                Self.failedPosts.increment()
                failures += 1
                if failures == 1 {
                    logger.warning(
                        "webhook POST failed; retrying with backoff",
                        metadata: ["webhook.url": "\(queue.webhook.url)", "webhook.problem": "\(problem)", "webhook.events": "\(batch.count)"]
                    )
                }
                let delay = min(500 << min(failures - 1, 4), 8_000)  // 0.5, 1, 2, 4, 8, 8… s
                try? await Task.sleep(for: .milliseconds(delay))
                continue
            }
            if failures > 0 { logger.info("webhook delivered again", metadata: ["webhook.url": "\(queue.webhook.url)"]) }
            failures = 0
            queue.removeFirst(batch.count)
            Self.delivered.increment(by: batch.count)
        }
    }

    /// nil when the receiver answered 2xx; otherwise what went wrong.
    private func post(_ body: ByteBuffer, to webhook: Webhook) async -> String? {
        var request = HTTPClientRequest(url: webhook.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "switchboard-webhooks")
        request.headers.add(name: "X-Switchboard-Signature", value: WebhookEvent.signature(of: body, secret: webhook.secret))
        request.body = .bytes(body)
        do {
            let response = try await client.execute(request, timeout: .seconds(Int64(webhook.timeoutSeconds)))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return (200..<300).contains(response.status.code) ? nil : "status \(response.status.code)"
        } catch {
            return "\(error)"
        }
    }
}

/// One event as it is POSTed.
struct WebhookEvent: Sendable, Equatable {
    let id: String
    let event: PresenceEvent

    /// `{"events":[…]}`.
    static func body(of events: [WebhookEvent]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeStaticString(#"{"events":["#)
        for (index, item) in events.enumerated() {
            if index > 0 { buffer.writeStaticString(",") }
            buffer.writeStaticString(#"{"id":"#)
            JSONWriter.writeString(item.id, into: &buffer)
            buffer.writeStaticString(#","type":"#)
            JSONWriter.writeString(item.event.kind.rawValue, into: &buffer)
            buffer.writeStaticString(#","topic":"#)
            JSONWriter.writeString(item.event.topic, into: &buffer)
            buffer.writeStaticString(#","key":"#)
            if let key = item.event.key {
                JSONWriter.writeString(key, into: &buffer)
            } else {
                buffer.writeStaticString("null")
            }
            buffer.writeString(#","time":\#(item.event.time)}"#)
        }
        buffer.writeStaticString("]}")
        return buffer
    }

    /// `sha256=<hex HMAC-SHA256 of the body with the secret>`.
    static func signature(of body: ByteBuffer, secret: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Array(body.readableBytesView), using: SymmetricKey(data: Array(secret.utf8)))
        return "sha256=" + code.map { byte in String(byte, radix: 16).leftPadded(to: 2) }.joined()
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// Event ids: this node's id and a number, unique in the cluster.
final class IDSource: Sendable {
    let node: String
    let counter = Atomic<UInt64>(0)

    init(node: String) {
        self.node = node
    }

    func next() -> String {
        "\(node)-\(counter.add(1, ordering: .relaxed).newValue)"
    }
}

/// The events waiting for one receiver.
final class WebhookQueue: Sendable {
    struct State {
        var events = Deque<WebhookEvent>()
        var dropping = false
    }

    let webhook: Webhook
    let state = Mutex(State())
    let wakeUps: AsyncStream<Void>
    let wakeUp: AsyncStream<Void>.Continuation

    init(_ webhook: Webhook) {
        self.webhook = webhook
        (wakeUps, wakeUp) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues the event; false when the queue is full.
    func offer(_ event: WebhookEvent) -> Bool {
        let queued = state.withLock { s -> Bool in
            guard s.events.count < webhook.queueSize else { return false }
            s.events.append(event)
            return true
        }
        if queued { wakeUp.yield() }
        return queued
    }

    /// Records a drop; true for the first of a run of drops (which is logged).
    func noteDrop() -> Bool {
        state.withLock { s in
            defer { s.dropping = true }
            return !s.dropping
        }
    }

    func peek(_ count: Int) -> [WebhookEvent] {
        state.withLock { Array($0.events.prefix(count)) }
    }

    func removeFirst(_ count: Int) {
        state.withLock { s in
            s.events.removeFirst(min(count, s.events.count))
            if s.events.count < webhook.queueSize { s.dropping = false }
        }
    }
}
