import DequeModule
import Synchronization

/// Runs async work items one at a time, in the order they were enqueued, on a task that exists
/// only while there is work (an idle mailbox costs no task).
public final class SerialMailbox: Sendable {
    private struct State {
        var queue = Deque<@Sendable () async -> Void>()
        var running = false
    }

    private let state = Mutex(State())

    public init() {}

    /// Queues `work`; it runs after everything queued before it has finished. Returns how many
    /// items wait to run (this one included), so callers can bound what a client may queue.
    @discardableResult
    public func enqueue(_ work: @escaping @Sendable () async -> Void) -> Int {
        let (start, depth) = state.withLock { s -> (Bool, Int) in
            s.queue.append(work)
            SwitchboardMetrics.mailboxQueued(1)
            if s.running { return (false, s.queue.count) }
            s.running = true
            return (true, s.queue.count)
        }
        if start {
            Task { await self.drain() }
        }
        return depth
    }

    private func drain() async {
        while true {
            let next: (@Sendable () async -> Void)? = state.withLock { s in
                if s.queue.isEmpty {
                    s.running = false
                    return nil
                }
                return s.queue.removeFirst()
            }
            guard let next else { return }
            await next()
            SwitchboardMetrics.mailboxQueued(-1)
        }
    }
}
