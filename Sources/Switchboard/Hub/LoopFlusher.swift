import NIOCore
import Synchronization

/// Flushes the connections a burst of broadcasts wrote to once, after the burst, instead of once
/// per broadcast: every broadcast's task on an event loop writes, then hands its subscribers here;
/// one task queued behind those broadcasts flushes them. When broadcasts arrive faster than a
/// loop turn, N messages to a connection then cost one `writev` instead of N, and a lone
/// broadcast is flushed in the same loop turn as before.
///
/// A broadcast that is alone on the loop (no other broadcast task queued behind it, nothing
/// waiting for a flush) is written and flushed connection by connection in one pass instead:
/// with thousands of connections, a second pass over them to flush misses the CPU caches the
/// first pass filled.
final class LoopFlusher: @unchecked Sendable {
    // @unchecked: `batches` and `scheduled` are used only on `loop` (callers are loop tasks);
    // `queued` is atomic.
    let loop: any EventLoop
    private var batches: [[any Subscriber]] = []
    private var scheduled = false
    /// Broadcast tasks handed to the loop that have not started yet.
    private let queued = Atomic<Int>(0)

    private init(loop: any EventLoop) {
        self.loop = loop
    }

    private static let byLoop = Mutex<[ObjectIdentifier: LoopFlusher]>([:])

    /// The flusher of `loop` (one per loop for the life of the process; looked up only when a
    /// topic gains its first subscriber on a loop).
    static func of(_ loop: any EventLoop) -> LoopFlusher {
        byLoop.withLock { flushers in
            let key = ObjectIdentifier(loop as AnyObject)
            if let flusher = flushers[key] { return flusher }
            let flusher = LoopFlusher(loop: loop)
            flushers[key] = flusher
            return flusher
        }
    }

    /// A broadcast task for this loop is about to be queued. Any thread.
    func broadcastQueued() {
        queued.wrappingAdd(1, ordering: .relaxed)
    }

    /// A broadcast task starts on the loop: true when it should flush each connection right after
    /// writing to it (no other broadcast queued behind it and no batch waiting for a flush), false
    /// when it should write only and call `flushSoon`. On the loop.
    func broadcastStarts() -> Bool {
        let behind = queued.wrappingSubtract(1, ordering: .relaxed).newValue
        return behind == 0 && !scheduled
    }

    /// Queues a flush of `subscribers` behind the tasks already waiting on the loop. On the loop.
    func flushSoon(_ subscribers: [any Subscriber]) {
        batches.append(subscribers)
        guard !scheduled else { return }
        scheduled = true
        loop.execute { self.flush() }
    }

    private func flush() {
        scheduled = false
        var work: [[any Subscriber]] = []
        swap(&work, &batches)
        for batch in work {
            for subscriber in batch {
                subscriber.flushBatch()
            }
        }
    }
}
