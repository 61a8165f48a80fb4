import Metrics
import NIOCore
import Synchronization

/// What Switchboard counts, through swift-metrics: the application picks the backend (the
/// `switchboard` server exports them for Prometheus at `/metrics`). Labels are bounded: a
/// transport name or a result, never a topic or a user. Hot-path counts are made once per
/// broadcast and event loop, not once per subscriber.
///
/// Bootstrap the metrics system first, then call `registerAll()`: every metric then exists from
/// the start (at zero), so a scrape before the first connection lists them all.
public enum SwitchboardMetrics {
    /// Makes every metric with the bootstrapped backend now, at zero, for every label value
    /// known in advance (each transport, each join result). Without it, a metric appears only
    /// when first used and a fresh server's scrape is empty. Call it after `MetricsSystem.bootstrap`.
    public static func registerAll() {
        let meters = [websocketConnections, sseConnections, longPollConnections, otherConnections, mailboxDepth]
        let counters = [connectionsOpened, joinsAccepted, joinsRefused, messagesIn, broadcasts, deliveries, slowConsumers, messagesOut]
        for meter in meters { meter.increment(by: 0) }
        for counter in counters { counter.increment(by: 0) }
        _ = deliveryLatency
    }

    /// Connections open now, by transport (`websocket`, `sse`, `longpoll`).
    static func connections(_ transport: String) -> Meter {
        switch transport {
        case "websocket": return websocketConnections
        case "sse": return sseConnections
        case "longpoll": return longPollConnections
        default: return otherConnections
        }
    }

    static let websocketConnections = Meter(label: "switchboard_connections", dimensions: [("transport", "websocket")])
    static let sseConnections = Meter(label: "switchboard_connections", dimensions: [("transport", "sse")])
    static let longPollConnections = Meter(label: "switchboard_connections", dimensions: [("transport", "longpoll")])
    static let otherConnections = Meter(label: "switchboard_connections", dimensions: [("transport", "other")])
    /// Connections accepted since start.
    static let connectionsOpened = Counter(label: "switchboard_connections_opened_total")
    /// Channel joins, by result.
    static let joinsAccepted = Counter(label: "switchboard_joins_total", dimensions: [("result", "ok")])
    static let joinsRefused = Counter(label: "switchboard_joins_total", dimensions: [("result", "refused")])
    /// Messages received from clients (frames, long-poll lines).
    static let messagesIn = Counter(label: "switchboard_messages_in_total")
    /// Broadcasts delivered on this node (each counts once, whatever its number of subscribers).
    static let broadcasts = Counter(label: "switchboard_broadcasts_total")
    /// Messages handed to subscribers' connections by broadcasts.
    static let deliveries = Counter(label: "switchboard_deliveries_total")
    /// Connections closed because they did not read fast enough (outbound queue or mailbox over its limit).
    static let slowConsumers = Counter(label: "switchboard_slow_consumer_disconnects_total")
    /// Messages sent to one connection (replies, pushes; broadcasts count as deliveries).
    static let messagesOut = Counter(label: "switchboard_messages_out_total")
    /// Work waiting for channel and plain-client callbacks (inbound events, intercepted and room
    /// broadcasts), all connections together: the queue that grows when callbacks cannot keep up.
    static let mailboxDepth = Meter(label: "switchboard_mailbox_queue_depth")
    /// From a broadcast reaching this node's hub to its frames being written on one event loop.
    static let deliveryLatency = Metrics.Timer(label: "switchboard_delivery_seconds")

    /// Counts a connection closed as a slow consumer.
    public static func slowConsumerClosed() {
        slowConsumers.increment()
        totals.slowConsumers.add(1, ordering: .relaxed)
    }

    /// Counts a message read from a client.
    public static func messageReceived() {
        messagesIn.increment()
        totals.messagesIn.add(1, ordering: .relaxed)
    }

    // MARK: Totals readable in-process (the dashboard)

    /// The same counts kept in this process's own atomics, whatever the metrics backend, so an
    /// in-process consumer (the server's dashboard) can read them.
    final class Totals: Sendable {
        let websocket = Atomic<Int>(0)
        let sse = Atomic<Int>(0)
        let longPoll = Atomic<Int>(0)
        let messagesIn = Atomic<Int>(0)
        let broadcasts = Atomic<Int>(0)
        let deliveries = Atomic<Int>(0)
        let slowConsumers = Atomic<Int>(0)
        let joins = Atomic<Int>(0)

        func addConnections(_ transport: String, _ delta: Int) {
            switch transport {
            case "websocket": websocket.add(delta, ordering: .relaxed)
            case "sse": sse.add(delta, ordering: .relaxed)
            case "longpoll": longPoll.add(delta, ordering: .relaxed)
            default: break
            }
        }
    }

    static let totals = Totals()

    /// The counts at one moment.
    public struct Snapshot: Sendable, Hashable {
        /// Open connections by transport.
        public var webSocketConnections: Int
        public var eventStreamConnections: Int
        public var longPollSessions: Int
        /// Totals since the process started.
        public var messagesIn: Int
        public var broadcasts: Int
        public var deliveries: Int
        public var slowConsumerDisconnects: Int
        public var joins: Int

        /// Every open connection.
        public var connections: Int { webSocketConnections + eventStreamConnections + longPollSessions }
    }

    /// The process's counts now (rates: take two snapshots and divide the difference).
    public static func snapshot() -> Snapshot {
        Snapshot(
            webSocketConnections: totals.websocket.load(ordering: .relaxed),
            eventStreamConnections: totals.sse.load(ordering: .relaxed),
            longPollSessions: totals.longPoll.load(ordering: .relaxed),
            messagesIn: totals.messagesIn.load(ordering: .relaxed),
            broadcasts: totals.broadcasts.load(ordering: .relaxed),
            deliveries: totals.deliveries.load(ordering: .relaxed),
            slowConsumerDisconnects: totals.slowConsumers.load(ordering: .relaxed),
            joins: totals.joins.load(ordering: .relaxed)
        )
    }

    // Each event counted once here: the swift-metrics object and the in-process total.
    static func connectionOpened(_ transport: String) {
        connections(transport).increment()
        connectionsOpened.increment()
        totals.addConnections(transport, 1)
    }

    static func connectionClosed(_ transport: String) {
        connections(transport).decrement()
        totals.addConnections(transport, -1)
    }

    static func joined(_ accepted: Bool) {
        (accepted ? joinsAccepted : joinsRefused).increment()
        if accepted { totals.joins.add(1, ordering: .relaxed) }
    }

    static func mailboxQueued(_ delta: Int) {
        if delta > 0 { mailboxDepth.increment(by: Double(delta)) } else { mailboxDepth.decrement(by: Double(-delta)) }
    }

    /// Counts a message sent to one connection (a reply or a push).
    public static func messageSent() {
        messagesOut.increment()
    }

    static func broadcastDelivered() {
        broadcasts.increment()
        totals.broadcasts.add(1, ordering: .relaxed)
    }

    static func delivered(_ count: Int, since start: NIODeadline) {
        deliveries.increment(by: count)
        totals.deliveries.add(count, ordering: .relaxed)
        deliveryLatency.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
    }
}
