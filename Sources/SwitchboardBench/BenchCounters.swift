import Synchronization

/// Counters shared by every event loop and read by the main thread for progress lines.
/// Lock-free (relaxed atomics) except the failure reasons, which are rare.
final class BenchCounters: Sendable {
    let connectsStarted = Atomic<Int>(0)
    let tcpConnected = Atomic<Int>(0)
    /// Subscriber sockets open right now.
    let openSockets = Atomic<Int>(0)
    let upgraded = Atomic<Int>(0)
    let joined = Atomic<Int>(0)
    /// Connections that ended before joining (connect error, refused upgrade or join, timeout).
    let failed = Atomic<Int>(0)
    /// Joined connections that closed before the bench closed them.
    let closedAfterJoin = Atomic<Int>(0)
    let published = Atomic<Int>(0)
    let publishAnswered = Atomic<Int>(0)
    let publishFinished = Atomic<Bool>(false)
    /// Slow consumers that, after reading again, reached the end of their stream or caught up.
    let slowSettled = Atomic<Int>(0)
    /// One per event loop; each is only written by its loop.
    let loops: [LoopCounters]
    private let reasons = Mutex<[String: Int]>([:])

    init(loops: Int) {
        self.loops = (0..<loops).map { _ in LoopCounters() }
    }

    func connectionFailed(_ reason: String) {
        failed.add(1, ordering: .relaxed)
        note(reason)
    }

    func connectionLost(_ reason: String) {
        closedAfterJoin.add(1, ordering: .relaxed)
        note(reason)
    }

    func note(_ reason: String) {
        reasons.withLock { $0[reason, default: 0] += 1 }
    }

    var failureReasons: [String: Int] { reasons.withLock { $0 } }

    /// Deliveries counted so far (duplicates excluded), summed over the loops.
    var deliveries: Int { loops.reduce(0) { $0 + $1.deliveries.load(ordering: .relaxed) } }
    var openSubscribers: Int { joined.load(ordering: .relaxed) - closedAfterJoin.load(ordering: .relaxed) }
}
