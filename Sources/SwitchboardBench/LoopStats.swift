import Histogram
import NIOCore

/// What the subscribers of one event loop measured. Touched only on that loop (handlers call it
/// from their callbacks), so it needs no locks; the main thread reads it through `snapshot`
/// submitted to the loop.
final class LoopStats {
    /// Most message ids tracked for broadcast completion (beyond it only latency is recorded).
    static let maxTrackedMessages = 20_000_000

    let counters: LoopCounters
    /// Per-delivery latency in microseconds.
    private(set) var latency = LoopStats.makeHistogram()
    /// Per message id: deliveries on this loop, and the largest latency among them (ns).
    private var messageDeliveries: [UInt32] = []
    private var messageMaxLatency: [UInt64] = []
    private var firstDelivery = UInt64.max
    private var lastDelivery: UInt64 = 0
    private var deliveries = 0
    /// Every subscriber handler created on this loop (closed ones too, for the accounting).
    var subscribers: [SubscriberHandler] = []
    /// Text/binary frames that were neither a delivery nor a reply the bench expects.
    var otherFrames = 0
    /// Deliveries naming a publisher connection the bench does not have.
    var malformed = 0
    /// SSE comment lines (keep-alives) read.
    var streamComments = 0

    init(counters: LoopCounters) {
        self.counters = counters
    }

    static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    }

    /// Records one first-time delivery of message `id`, sent at `sentAt`, read at `now`.
    @inline(__always)
    func record(id: Int, sentAt: UInt64, now: UInt64) {
        let elapsed = now > sentAt ? now - sentAt : 0
        latency.record(min((elapsed + 500) / 1000, latency.highestTrackableValue))
        deliveries += 1
        counters.deliveries.wrappingAdd(1, ordering: .relaxed)
        if now < firstDelivery { firstDelivery = now }
        if now > lastDelivery { lastDelivery = now }
        guard id >= 0, id < Self.maxTrackedMessages else { return }
        if id >= messageDeliveries.count {
            let size = min(Self.maxTrackedMessages, max(id + 1, messageDeliveries.count * 2, 1024))
            messageDeliveries.append(contentsOf: repeatElement(0, count: size - messageDeliveries.count))
            messageMaxLatency.append(contentsOf: repeatElement(0, count: size - messageMaxLatency.count))
        }
        messageDeliveries[id] &+= 1
        if elapsed > messageMaxLatency[id] { messageMaxLatency[id] = elapsed }
    }

    /// Everything measured so far; `expected` is how many messages every subscriber should have,
    /// or with topic groups `topicAccepted` the accepted messages per topic number (a subscriber
    /// should have those of its two topics). Slow consumers are left out. `connectionSent`
    /// (--publish-during-ramp): the messages sent on each publisher connection; each subscriber
    /// expects those from the first one it received on each connection (none if it received none).
    func snapshot(expected: Int, topicAccepted: [Int]? = nil, connectionSent: [Int]? = nil) -> LoopSnapshot {
        var snapshot = LoopSnapshot(latency: latency, messageDeliveries: messageDeliveries, messageMaxLatency: messageMaxLatency)
        snapshot.deliveries = deliveries
        snapshot.firstDelivery = firstDelivery
        snapshot.lastDelivery = lastDelivery
        snapshot.otherFrames = otherFrames
        snapshot.malformed = malformed
        snapshot.streamComments = streamComments
        for subscriber in subscribers where subscriber.wasJoined && !subscriber.isSlow {
            var distinct = subscriber.received - subscriber.duplicates - subscriber.misrouted
            var expected = expected
            if let topicAccepted, subscriber.personalTopic >= 0 {
                expected = topicAccepted[subscriber.personalTopic] + topicAccepted[subscriber.groupTopic]
            }
            if let connectionSent {
                (expected, distinct) = subscriber.expectedFromFirst(connectionSent: connectionSent)
                if subscriber.received == 0 { snapshot.withoutDelivery += 1 }
            }
            snapshot.expected += expected
            snapshot.subscribers += 1
            snapshot.received += subscriber.received
            snapshot.duplicates += subscriber.duplicates
            snapshot.outOfOrder += subscriber.outOfOrder
            snapshot.lost += max(0, expected - distinct)
            snapshot.unexpected += subscriber.misrouted + max(0, distinct - expected)
            snapshot.heartbeatsSent += subscriber.heartbeatsSent
            snapshot.heartbeatReplies += subscriber.heartbeatReplies
            if subscriber.isOpen { snapshot.open += 1 }
        }
        snapshot.presence = presenceTally()
        return snapshot
    }

    /// The presence frames of every joined subscriber of this loop, slow ones included.
    func presenceTally() -> PresenceTally {
        let now = MonotonicClock.nanoseconds()
        var tally = PresenceTally()
        for subscriber in subscribers where subscriber.wasJoined { tally.add(subscriber.presenceTally(now: now)) }
        return tally
    }
}
