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

/// One stored message, as the history gives it back.
public struct StoredMessage: Sendable, Hashable {
    enum Body: Sendable, Hashable {
        case json(ArraySlice<UInt8>)
        case binary(ArraySlice<UInt8>)
    }

    public var offset: UInt64
    public var event: String
    var body: Body
    /// When it was stored, in Unix milliseconds.
    public var time: Int64

    public init(offset: UInt64, event: String, payload: Payload, time: Int64) {
        self.init(offset: offset, slot: Slot(event: event, payload: payload, time: time))
    }

    init(offset: UInt64, slot: Slot) {
        self.offset = offset
        self.time = slot.time
        let bytes = slot.bytes
        var start = 2
        var length = Int(bytes[1])
        if length == 255 {
            length = Int(bytes[2]) | Int(bytes[3]) << 8 | Int(bytes[4]) << 16 | Int(bytes[5]) << 24
            start = 6
        }
        self.event = String(decoding: bytes[start..<(start + length)], as: UTF8.self)
        let rest = bytes[(start + length)...]
        self.body = bytes[0] == 0 ? .json(rest) : .binary(rest)
    }

    /// The message as the broadcast it was, with its position (for a replay, which must look
    /// like the live delivery it stands for).
    func broadcast(topic: String, epoch: String) -> Broadcast {
        var broadcast = Broadcast(topic: topic, event: event, payload: payload)
        broadcast.streamPosition = StreamPosition(epoch: epoch, offset: offset)
        return broadcast
    }

    /// The payload as it was published.
    public var payload: Payload {
        switch body {
        case .json(let bytes): return .json((try? JSONParser.parse(bytes)) ?? .null)
        case .binary(let bytes): return .binary(ByteBuffer(bytes: bytes))
        }
    }
}

/// A kept message packed for memory: one byte array holding its kind (0 JSON text, 1 binary), its
/// event's length (one byte; 255 and 4 more bytes, little-endian, from 255 on) and UTF-8, then its
/// payload; and its time. Its offset follows from its place in the stream.
struct Slot: Sendable {
    var bytes: [UInt8]
    var time: Int64

    init(event: String, payload: Payload, time: Int64) {
        let name = Array(event.utf8)
        var bytes: [UInt8] = []
        switch payload {
        case .json(let json):
            bytes.reserveCapacity(5 + name.count + 64)
            bytes.append(0)
            Self.header(name, into: &bytes)
            JSONWriter.write(json, into: &bytes)
        case .binary(let buffer):
            bytes.reserveCapacity(5 + name.count + buffer.readableBytes)
            bytes.append(1)
            Self.header(name, into: &bytes)
            bytes += buffer.readableBytesView
        }
        // Kept for long: exactly as large as its contents (growing it left spare capacity).
        self.bytes = [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, count in
            count = buffer.initialize(fromContentsOf: bytes)
        }
        self.time = time
    }

    private static func header(_ name: [UInt8], into bytes: inout [UInt8]) {
        if name.count < 255 {
            bytes.append(UInt8(name.count))
        } else {
            let count = UInt32(truncatingIfNeeded: name.count)
            bytes += [255, UInt8(count & 0xFF), UInt8(count >> 8 & 0xFF), UInt8(count >> 16 & 0xFF), UInt8(count >> 24)]
        }
        bytes += name
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
    private var slots = Deque<Slot>()

    /// The offset of the oldest kept slot.
    private var firstOffset: UInt64 { offset - UInt64(slots.count) + 1 }

    public init(epoch: String, policy: HistoryPolicy) {
        self.epoch = epoch
        self.policy = policy
    }

    public var position: StreamPosition { StreamPosition(epoch: epoch, offset: offset) }

    /// Stores a message and returns its position (the next offset).
    public mutating func append(event: String, payload: Payload, now: Int64) -> StreamPosition {
        offset += 1
        // A stream grows to its size and stays there: room for exactly that many (up to 1 024
        // at first, so a large size costs nothing until used).
        if slots.isEmpty { slots.reserveCapacity(min(policy.size, 1024)) }
        slots.append(Slot(event: event, payload: payload, time: now))
        trim(now: now)
        return position
    }

    /// Drops what the policy no longer keeps: beyond `size`, older than `ttl`.
    public mutating func trim(now: Int64) {
        while slots.count > policy.size { slots.removeFirst() }
        let oldest = now - policy.ttl.milliseconds
        while let first = slots.first, first.time <= oldest { slots.removeFirst() }
    }

    /// The kept messages that are still within the TTL at `now`, oldest first.
    public func kept(now: Int64) -> ArraySlice<StoredMessage> {
        let oldest = now - policy.ttl.milliseconds
        let start = slots.firstIndex { $0.time > oldest } ?? slots.endIndex
        let first = firstOffset
        var result: [StoredMessage] = []
        result.reserveCapacity(slots.count - start)
        for index in start..<slots.count {
            result.append(StoredMessage(offset: first + UInt64(index), slot: slots[index]))
        }
        return result[...]
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
