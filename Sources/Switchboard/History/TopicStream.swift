import DequeModule
import NIOCore

/// Where a message stands in its topic's stream: the stream's epoch (one lifetime of it: a new
/// epoch whenever its continuity is lost, e.g. a memory stream dropped or a Redis flush) and the
/// message's offset in it (1, 2, 3…; 0 names "before the first message").
public struct StreamPosition: Sendable, Hashable, CustomStringConvertible {
    public var epoch: String
    public var offset: UInt64

    public init(epoch: String, offset: UInt64) {
        self.epoch = epoch
        self.offset = offset
    }

    /// `{"epoch": "…", "offset": n}`, as join replies carry it.
    public var json: JSONValue { ["epoch": .string(epoch), "offset": .int(Int64(offset))] }

    /// Reads `{"epoch": "…", "offset": n}` (a join's `recover`); nil when malformed.
    public init?(json: JSONValue) {
        guard let epoch = json["epoch"]?.stringValue, !epoch.isEmpty, let offset = json["offset"]?.intValue, offset >= 0 else { return nil }
        self.init(epoch: epoch, offset: UInt64(offset))
    }

    /// `<epoch>:<offset>`, as broadcast refs and the API's `since` carry it.
    public var description: String { "\(epoch):\(offset)" }

    /// Reads `<epoch>:<offset>` (the epoch may itself hold no colon); nil when malformed.
    public init?(_ text: some StringProtocol) {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
            let offset = UInt64(text[text.index(after: colon)...])
        else { return nil }
        let epoch = String(text[..<colon])
        guard !epoch.contains(":") else { return nil }
        self.init(epoch: epoch, offset: offset)
    }
}

/// How much of a topic's stream is kept, and how much one recovery may replay.
public struct HistoryPolicy: Sendable, Hashable {
    /// Messages kept (the oldest go first).
    public var size: Int
    /// How long a message is kept; an older one is never returned or replayed.
    public var ttl: Duration
    /// Most messages one recovery replays (exactly that many still recovers).
    public var maxRecover: Int

    public init(size: Int = 100, ttl: Duration = .seconds(300), maxRecover: Int = 1000) {
        self.size = max(1, size)
        self.ttl = ttl
        self.maxRecover = max(0, maxRecover)
    }
}

/// One stored message. A JSON payload is kept as its encoded text (one allocation of about its
/// size, where the parsed tree took several), and parsed again when read.
public struct StoredMessage: Sendable, Hashable {
    enum Body: Sendable, Hashable {
        case json([UInt8])
        case binary(ByteBuffer)
    }

    public var offset: UInt64
    public var event: String
    var body: Body
    /// When it was stored, in Unix milliseconds.
    public var time: Int64

    public init(offset: UInt64, event: String, payload: Payload, time: Int64) {
        self.offset = offset
        self.event = event
        self.time = time
        switch payload {
        case .json(let json):
            var bytes: [UInt8] = []
            JSONWriter.write(json, into: &bytes)
            body = .json(bytes)
        case .binary(let buffer):
            body = .binary(buffer)
        }
    }

    /// The payload as it was published.
    public var payload: Payload {
        switch body {
        case .json(let bytes): return .json((try? JSONParser.parse(bytes)) ?? .null)
        case .binary(let buffer): return .binary(buffer)
        }
    }
}

/// What a client that last saw `since` can be given.
public enum Recovery: Sendable, Hashable {
    /// Exactly the messages after `since`, oldest first (possibly none), up to `current`.
    case recovered([StoredMessage], current: StreamPosition)
    /// Not possible (another epoch, too old, in the future, too many): only the current position.
    case notRecovered(current: StreamPosition)
}

/// One topic's stream in memory: its epoch, the newest offset, and the kept messages. A value;
/// its owner keeps it under a lock.
public struct TopicStream: Sendable {
    public let epoch: String
    public private(set) var offset: UInt64 = 0
    public var policy: HistoryPolicy
    private(set) var messages = Deque<StoredMessage>()

    public init(epoch: String, policy: HistoryPolicy) {
        self.epoch = epoch
        self.policy = policy
    }

    public var position: StreamPosition { StreamPosition(epoch: epoch, offset: offset) }

    /// Stores a message and returns its position (the next offset).
    public mutating func append(event: String, payload: Payload, now: Int64) -> StreamPosition {
        offset += 1
        messages.append(StoredMessage(offset: offset, event: event, payload: payload, time: now))
        trim(now: now)
        return position
    }

    /// Drops what the policy no longer keeps: beyond `size`, older than `ttl`.
    public mutating func trim(now: Int64) {
        while messages.count > policy.size { messages.removeFirst() }
        let oldest = now - policy.ttl.milliseconds
        while let first = messages.first, first.time <= oldest { messages.removeFirst() }
    }

    /// The kept messages that are still within the TTL at `now`, oldest first.
    public func kept(now: Int64) -> ArraySlice<StoredMessage> {
        let oldest = now - policy.ttl.milliseconds
        let start = messages.firstIndex { $0.time > oldest } ?? messages.endIndex
        return Array(messages)[start...]
    }

    /// What a client whose last message was at `since` missed, if this stream can say exactly.
    public func recover(since: StreamPosition, now: Int64) -> Recovery {
        let current = position
        guard since.epoch == epoch, since.offset <= offset else { return .notRecovered(current: current) }
        let missing = offset - since.offset
        guard missing > 0 else { return .recovered([], current: current) }
        guard missing <= UInt64(policy.maxRecover) else { return .notRecovered(current: current) }
        let available = kept(now: now)
        // Every missed offset must still be here: the oldest kept one at most since + 1.
        guard let first = available.first, first.offset <= since.offset + 1 else { return .notRecovered(current: current) }
        return .recovered(available.filter { $0.offset > since.offset }, current: current)
    }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
