#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The fields the publisher writes into every payload:
/// `{"seq":<id>,"c":<connection>,"cs":<sequence on that connection>,"t":<send time ns>,"pad":"…"}`.
///
/// `seq` numbers every message of the run (for broadcast completion); `cs` numbers the messages
/// of one publisher connection. Requests on one HTTP/1.1 connection are answered in order, so a
/// server that keeps order delivers each connection's `cs` in increasing order to every
/// subscriber; across connections no order is promised, and none is checked.
///
/// With topic groups the payload also has `"tp":<topic number>` (see `TopicLayout`), written
/// after `t`; without them `topic` is -1.
struct Delivery {
    var id: Int
    var connection: Int
    var connectionSequence: Int
    var sentAt: UInt64
    var topic = -1

    /// Finds the fields anywhere in a frame (Phoenix envelope or raw body, any key order) in one
    /// pass over its quote characters. Returns nil for a frame that is not a bench delivery (join
    /// replies, heartbeat replies, …).
    @inline(__always)
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Delivery? {
        guard let base = bytes.baseAddress else { return nil }
        let count = bytes.count
        var id: UInt64?
        var connection: UInt64?
        var sequence: UInt64?
        var sentAt: UInt64?
        var topic: UInt64?
        var index = 0
        while index < count, let quote = memchr(base + index, 0x22, count - index) {
            let key = base.distance(to: UnsafeRawPointer(quote)) + 1
            index = key
            // Keys: seq":  c":  cs":  t":  tp":
            guard key + 3 <= count else { break }
            switch bytes[key] {
            case UInt8(ascii: "s"):
                if key + 5 <= count, bytes[key + 1] == UInt8(ascii: "e"), bytes[key + 2] == UInt8(ascii: "q"), bytes[key + 3] == 0x22,
                    bytes[key + 4] == UInt8(ascii: ":")
                {
                    id = number(at: key + 5, in: bytes, end: &index)
                }
            case UInt8(ascii: "c"):
                if bytes[key + 1] == 0x22, bytes[key + 2] == UInt8(ascii: ":") {
                    connection = number(at: key + 3, in: bytes, end: &index)
                } else if key + 4 <= count, bytes[key + 1] == UInt8(ascii: "s"), bytes[key + 2] == 0x22, bytes[key + 3] == UInt8(ascii: ":") {
                    sequence = number(at: key + 4, in: bytes, end: &index)
                }
            case UInt8(ascii: "t"):
                if bytes[key + 1] == 0x22, bytes[key + 2] == UInt8(ascii: ":") {
                    sentAt = number(at: key + 3, in: bytes, end: &index)
                } else if key + 4 <= count, bytes[key + 1] == UInt8(ascii: "p"), bytes[key + 2] == 0x22, bytes[key + 3] == UInt8(ascii: ":") {
                    topic = number(at: key + 4, in: bytes, end: &index)
                }
            default:
                break
            }
        }
        guard let id, let connection, let sequence, let sentAt else { return nil }
        return Delivery(
            id: Int(truncatingIfNeeded: id),
            connection: Int(truncatingIfNeeded: connection),
            connectionSequence: Int(truncatingIfNeeded: sequence),
            sentAt: sentAt,
            topic: topic.map { Int(truncatingIfNeeded: $0) } ?? -1
        )
    }

    /// The unsigned decimal starting at `start`; `end` moves past it.
    @inline(__always)
    private static func number(at start: Int, in bytes: UnsafeRawBufferPointer, end: inout Int) -> UInt64? {
        var index = start
        var value: UInt64 = 0
        while index < bytes.count, index - start < 20 {
            let byte = bytes[index]
            guard byte >= 0x30, byte <= 0x39 else { break }
            value = value &* 10 &+ UInt64(byte - 0x30)
            index += 1
        }
        guard index > start else { return nil }
        end = index
        return value
    }

    /// True when `needle` occurs in `bytes` (for the rare control frames; not on the hot path).
    static func contains(_ needle: StaticString, in bytes: UnsafeRawBufferPointer) -> Bool {
        let length = needle.utf8CodeUnitCount
        guard let base = bytes.baseAddress, length > 0, bytes.count >= length else { return false }
        let first = Int32(needle.utf8Start.pointee)
        var index = 0
        while index <= bytes.count - length, let hit = memchr(base + index, first, bytes.count - length - index + 1) {
            if memcmp(hit, needle.utf8Start, length) == 0 { return true }
            index = base.distance(to: UnsafeRawPointer(hit)) + 1
        }
        return false
    }
}
