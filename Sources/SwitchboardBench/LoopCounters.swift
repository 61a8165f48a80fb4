import Synchronization

/// The counters of one event loop.
final class LoopCounters: Sendable {
    let deliveries = Atomic<Int>(0)
}
