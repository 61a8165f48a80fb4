import Foundation
import Logging
import Synchronization

/// The last warnings and errors logged (a fixed-size ring: memory does not grow with the log).
final class RecentErrors: Sendable {
    /// One remembered log entry.
    struct Entry: Sendable, Equatable {
        var time: Date
        var level: Logger.Level
        /// The module that logged it (swift-log's `source`).
        var label: String
        /// The message and its explicit metadata, cut to `maxMessageLength` characters.
        var message: String
    }

    /// Most entries kept; older ones are forgotten.
    let capacity: Int
    /// Longest message kept, in characters.
    let maxMessageLength: Int

    private struct Ring {
        var entries: [Entry] = []
        var next = 0  // where the next entry goes once the ring is full
        var total = 0
    }

    private let ring = Mutex(Ring())

    init(capacity: Int = 20, maxMessageLength: Int = 500) {
        self.capacity = max(1, capacity)
        self.maxMessageLength = maxMessageLength
    }

    func append(_ entry: Entry) {
        var entry = entry
        if entry.message.count > maxMessageLength {
            entry.message = String(entry.message.prefix(maxMessageLength)) + "…"
        }
        ring.withLock { ring in
            ring.total += 1
            if ring.entries.count < capacity {
                ring.entries.append(entry)
            } else {
                ring.entries[ring.next] = entry
                ring.next = (ring.next + 1) % capacity
            }
        }
    }

    /// The remembered entries, oldest first, and how many were logged since start.
    func entries() -> (entries: [Entry], total: Int) {
        ring.withLock { ring in
            (Array(ring.entries[ring.next...] + ring.entries[..<ring.next]), ring.total)
        }
    }
}
