/// What became of the slow consumers (`--slow-fraction`), summed over the event loops.
struct SlowConsumerReport: Sendable {
    /// Most seconds the slow consumers get, all together, to read what was queued for them.
    static let probeSeconds = 5.0

    /// Slow subscribers that joined (and so stopped reading when publishing started).
    var subscribers = 0
    var closedByServer = 0
    var stillOpen = 0
    /// Closed by the bench because of a protocol error (neither of the above).
    var failed = 0
    /// Messages they read in all, most of them after reading again.
    var received = 0
    /// How the closed ones ended: "close code 1008", "end of stream without a close frame", …
    var outcomes: [String: Int] = [:]

    mutating func add(_ other: SlowConsumerReport) {
        subscribers += other.subscribers
        closedByServer += other.closedByServer
        stillOpen += other.stillOpen
        failed += other.failed
        received += other.received
        outcomes.merge(other.outcomes, uniquingKeysWith: +)
    }
}
