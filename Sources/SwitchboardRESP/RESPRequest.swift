import NIOCore

/// One command on its way to Redis with the promise its reply completes.
struct RESPRequest {
    var command: RESPCommand
    var promise: EventLoopPromise<RESPValue>?
    var deadline: NIODeadline?
    /// Pub/sub commands are answered by one push per channel instead of a reply.
    var confirmations: Int

    init(command: RESPCommand, promise: EventLoopPromise<RESPValue>?, deadline: NIODeadline?) {
        self.command = command
        self.promise = promise
        self.deadline = deadline
        switch command.name {
        case "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "SSUBSCRIBE", "SUNSUBSCRIBE":
            confirmations = max(1, command.arguments.count - 1)
        default:
            confirmations = 0
        }
    }
}

/// Requests written together: encoded into one buffer and flushed once.
struct RESPRequestBatch {
    var requests: [RESPRequest]
}
