import Histogram

/// A copy of one loop's measurements, safe to hand to the main thread.
struct LoopSnapshot: Sendable {
    var latency: Histogram<UInt64>
    var messageDeliveries: [UInt32]
    var messageMaxLatency: [UInt64]
    var deliveries = 0
    var firstDelivery = UInt64.max
    var lastDelivery: UInt64 = 0
    var subscribers = 0
    var open = 0
    var received = 0
    var duplicates = 0
    var outOfOrder = 0
    var lost = 0
    var unexpected = 0
    var heartbeatsSent = 0
    var heartbeatReplies = 0
    var otherFrames = 0
    var malformed = 0
    var streamComments = 0
    /// Deliveries the measured subscribers of this loop should have received.
    var expected = 0
    /// --publish-during-ramp: measured subscribers that received no message at all.
    var withoutDelivery = 0
    var presence = PresenceTally()
}
