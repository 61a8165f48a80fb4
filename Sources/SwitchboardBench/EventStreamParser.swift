#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Incremental `text/event-stream` parsing (HTML standard, "Parsing an event stream") for the
/// SSE subscribers: finds the complete blocks (lines up to a blank line) at the front of the
/// bytes read so far and hands each block's fields to the caller in place, without copying.
///
/// Lines end with CRLF, LF or CR. A block with `data:` lines is an event; a block of comments
/// (`: keep-alive`) or of `retry:` alone is not. A partial block is left unconsumed and parsed
/// again from its start when more bytes arrive, so no state survives between calls and nothing
/// is applied twice (blocks are small; their fields take effect only once the block is complete).
enum EventStreamParser {
    /// One complete block. The pointers are valid only during the callback.
    struct Block {
        /// The data buffer: the value of the only `data` field, or the values of several joined
        /// by LF (copied only then); nil when the block has no `data` field or only an empty one.
        var data: UnsafeRawBufferPointer?
        /// The last `event` field's value (nil: the default type, `message`).
        var event: UnsafeRawBufferPointer?
        /// The last `id` field's value.
        var id: UnsafeRawBufferPointer?
        /// The last valid `retry` field (milliseconds).
        var retry: Int?
        /// Comment lines (`:` first).
        var comments = 0
    }

    private static let lf: Int32 = 0x0A
    private static let cr: UInt8 = 0x0D
    private static let colon: Int32 = 0x3A

    /// Calls `body` for every complete block at the front of `bytes`, in order; returns how many
    /// bytes those blocks took (the rest is an incomplete block).
    @inline(__always)
    static func parse(_ bytes: UnsafeRawBufferPointer, _ body: (Block) -> Void) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        let count = bytes.count
        var consumed = 0
        var lineStart = 0
        var block = Block()
        var firstData: Range<Int>?
        var joinedData: [UInt8]?
        while lineStart < count {
            // The line ends at the first CR or LF; CR LF counts as one terminator.
            let lineEnd: Int
            let next: Int
            let remaining = count - lineStart
            let lfHit = memchr(base + lineStart, lf, remaining)
            let searchEnd = lfHit.map { base.distance(to: UnsafeRawPointer($0)) } ?? count
            if let crHit = memchr(base + lineStart, Int32(cr), searchEnd - lineStart) {
                lineEnd = base.distance(to: UnsafeRawPointer(crHit))
                if lineEnd + 1 < count {
                    next = bytes[lineEnd + 1] == UInt8(lf) ? lineEnd + 2 : lineEnd + 1
                } else {
                    break  // a CR as the last byte read: an LF may follow in the next read
                }
            } else if lfHit != nil {
                lineEnd = searchEnd
                next = searchEnd + 1
            } else {
                break  // no complete line left
            }

            if lineEnd == lineStart {
                // Blank line: the block is complete.
                if let joinedData {
                    joinedData.withUnsafeBytes { data in
                        block.data = data
                        body(block)
                    }
                } else {
                    // An empty data buffer dispatches no event (the standard).
                    if let firstData, !firstData.isEmpty { block.data = UnsafeRawBufferPointer(rebasing: bytes[firstData]) }
                    body(block)
                }
                block = Block()
                firstData = nil
                joinedData = nil
                consumed = next
            } else if bytes[lineStart] == UInt8(colon) {
                block.comments += 1
            } else {
                let nameEnd = memchr(base + lineStart, colon, lineEnd - lineStart).map { base.distance(to: UnsafeRawPointer($0)) } ?? lineEnd
                var valueStart = min(nameEnd + 1, lineEnd)
                if valueStart < lineEnd, bytes[valueStart] == 0x20 { valueStart += 1 }
                let name = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<nameEnd])
                let value = valueStart..<lineEnd
                if equals(name, "data") {
                    if let first = firstData {
                        var joined = joinedData ?? Array(UnsafeRawBufferPointer(rebasing: bytes[first]))
                        joined.append(UInt8(lf))
                        joined.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[value]))
                        joinedData = joined
                    } else {
                        firstData = value
                    }
                } else if equals(name, "event") {
                    block.event = UnsafeRawBufferPointer(rebasing: bytes[value])
                } else if equals(name, "id") {
                    block.id = UnsafeRawBufferPointer(rebasing: bytes[value])
                } else if equals(name, "retry") {
                    block.retry = decimal(UnsafeRawBufferPointer(rebasing: bytes[value])) ?? block.retry
                }
                // Other field names are ignored, as the standard says.
            }
            lineStart = next
        }
        return consumed
    }

    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
        bytes.count == text.utf8CodeUnitCount && (bytes.count == 0 || memcmp(bytes.baseAddress!, text.utf8Start, bytes.count) == 0)
    }

    /// ASCII digits only (as `retry` requires); nil otherwise.
    private static func decimal(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }
}
