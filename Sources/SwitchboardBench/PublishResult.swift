import Histogram

/// The outcome of the publish phase.
struct PublishResult: Sendable {
    var sent = 0
    var accepted = 0
    var errors = 0
    var errorKinds: [String: Int] = [:]
    var startedAt: UInt64 = 0
    var stoppedAt: UInt64 = 0
    var lastSentAt: UInt64 = 0
    /// Largest number of messages that were due but not yet sent (fixed rate only).
    var maxBacklog = 0
    /// Time from writing a request to reading its answer, in microseconds.
    var answerLatency = LoopStats.makeHistogram()
    /// With topic groups: each message's topic number (by message id), and how many accepted
    /// messages each topic got. Empty otherwise.
    var messageTopics: [Int32] = []
    var topicAccepted: [Int] = []
    /// Messages sent on each publisher connection (its `cs` numbers are 0 ..< count).
    var connectionSent: [Int] = []
}
