import NIOCore

/// Decodes RESP3 values from a byte stream. A value type with no I/O: feed it a buffer that holds
/// what has arrived so far; it returns one complete value and consumes its bytes, or `nil` (and
/// consumes nothing) when the value is not complete yet.
///
/// Every size is bounded by ``Limits``, so hostile or corrupt input fails with a
/// ``RESPDecodeError`` instead of exhausting memory or the stack. Streamed strings and aggregates
/// (`$?`, `*?`) are not supported: Redis never sends them in reply to commands.
public struct RESPDecoder: Sendable {
    /// Upper bounds on what one value may contain.
    public struct Limits: Sendable, Hashable {
        /// Longest bulk, verbatim or bulk-error string. Redis itself caps strings at 512 MiB.
        public var maxBulkLength = 512 * 1024 * 1024
        /// Most elements of one array, set or push (pairs for maps and attributes).
        public var maxAggregateCount = 1 << 24
        /// Deepest nesting of aggregates.
        public var maxDepth = 64
        /// Longest line of a simple type (simple string, error, number, length header).
        public var maxLineLength = 64 * 1024

        public init() {}
    }

    /// The limits this decoder enforces.
    public var limits: Limits

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Decodes the next complete value at the start of `buffer` and moves its reader index past it;
    /// `nil` when more bytes are needed (the buffer is then left untouched).
    public func decode(_ buffer: inout ByteBuffer) throws(RESPDecodeError) -> RESPValue? {
        let base = buffer
        let outcome: Result<(RESPValue, Int)?, RESPDecodeError> = base.withUnsafeReadableBytes { bytes in
            var parser = Parser(bytes: bytes, buffer: base, limits: limits)
            do throws(RESPDecodeError) {
                guard let value = try parser.value(depth: 0) else { return .success(nil) }
                return .success((value, parser.index))
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case .success(.some((let value, let consumed))):
            buffer.moveReaderIndex(forwardBy: consumed)
            return value
        case .success(.none):
            return nil
        case .failure(let error):
            throw error
        }
    }

    /// Decodes every complete value in `buffer`, leaving a trailing partial value in it.
    public func decodeAll(_ buffer: inout ByteBuffer) throws(RESPDecodeError) -> [RESPValue] {
        var values: [RESPValue] = []
        while let value = try decode(&buffer) { values.append(value) }
        return values
    }
}

extension RESPDecoder {
    /// A recursive-descent parser over the readable bytes. `nil` from any method means
    /// "incomplete": the caller then consumes nothing and waits for more bytes.
    struct Parser {
        let bytes: UnsafeRawBufferPointer
        let buffer: ByteBuffer
        let limits: Limits
        var index = 0

        init(bytes: UnsafeRawBufferPointer, buffer: ByteBuffer, limits: Limits) {
            self.bytes = bytes
            self.buffer = buffer
            self.limits = limits
        }

        func fail(_ reason: String, at offset: Int? = nil) -> RESPDecodeError {
            RESPDecodeError(reason: reason, offset: offset ?? index)
        }

        mutating func value(depth: Int) throws(RESPDecodeError) -> RESPValue? {
            // Attributes describe the value after them; they are skipped and never counted as an element.
            while true {
                guard index < bytes.count else { return nil }
                let type = bytes[index]
                let start = index
                index += 1
                if type == UInt8(ascii: "|") {
                    guard let count = try length(allowNull: false, start: start) else { return nil }
                    guard depth < limits.maxDepth else { throw fail("nesting deeper than \(limits.maxDepth)", at: start) }
                    guard count <= limits.maxAggregateCount else { throw fail("attribute of \(count) pairs over the limit", at: start) }
                    for _ in 0..<count {
                        guard try value(depth: depth + 1) != nil, try value(depth: depth + 1) != nil else { return nil }
                    }
                    continue
                }
                return try value(type: type, start: start, depth: depth)
            }
        }

        mutating func value(type: UInt8, start: Int, depth: Int) throws(RESPDecodeError) -> RESPValue? {
            switch type {
            case UInt8(ascii: "+"):
                return try line().map { .simpleString(text($0)) }
            case UInt8(ascii: "-"):
                return try line().map { .simpleError(text($0)) }
            case UInt8(ascii: ":"):
                guard let range = try line() else { return nil }
                guard let int = integer(range) else { throw fail("invalid integer", at: range.lowerBound) }
                return .integer(int)
            case UInt8(ascii: "_"):
                guard let range = try line() else { return nil }
                guard range.isEmpty else { throw fail("null with content", at: range.lowerBound) }
                return .null
            case UInt8(ascii: "#"):
                guard let range = try line() else { return nil }
                guard range.count == 1 else { throw fail("invalid boolean", at: range.lowerBound) }
                switch bytes[range.lowerBound] {
                case UInt8(ascii: "t"): return .boolean(true)
                case UInt8(ascii: "f"): return .boolean(false)
                default: throw fail("invalid boolean", at: range.lowerBound)
                }
            case UInt8(ascii: ","):
                guard let range = try line() else { return nil }
                guard let double = double(range) else { throw fail("invalid double", at: range.lowerBound) }
                return .double(double)
            case UInt8(ascii: "("):
                guard let range = try line() else { return nil }
                let digits =
                    range.first.map { bytes[$0] == UInt8(ascii: "-") || bytes[$0] == UInt8(ascii: "+") } == true ? range.dropFirst() : range[...]
                guard !digits.isEmpty, digits.allSatisfy({ isDigit(bytes[$0]) }) else { throw fail("invalid big number", at: range.lowerBound) }
                return .bigNumber(text(range))
            case UInt8(ascii: "$"):
                guard let count = try length(allowNull: true, start: start) else { return nil }
                if count < 0 { return .null }
                return try blob(count).map { .bulkString(buffer.getSlice(at: buffer.readerIndex + $0.lowerBound, length: $0.count)!) }
            case UInt8(ascii: "!"):
                guard let count = try length(allowNull: false, start: start) else { return nil }
                return try blob(count).map { .bulkError(text($0)) }
            case UInt8(ascii: "="):
                guard let count = try length(allowNull: false, start: start) else { return nil }
                guard let range = try blob(count) else { return nil }
                guard range.count >= 4, bytes[range.lowerBound + 3] == UInt8(ascii: ":") else {
                    throw fail("verbatim string without a format", at: range.lowerBound)
                }
                return .verbatimString(format: text(range.lowerBound..<range.lowerBound + 3), text: text(range.lowerBound + 4..<range.upperBound))
            case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"):
                guard let count = try length(allowNull: type == UInt8(ascii: "*"), start: start) else { return nil }
                if count < 0 { return .null }
                guard depth < limits.maxDepth else { throw fail("nesting deeper than \(limits.maxDepth)", at: start) }
                guard count <= limits.maxAggregateCount else { throw fail("aggregate of \(count) elements over the limit", at: start) }
                var elements: [RESPValue] = []
                // Never trust a declared count for allocation: it may be a lie.
                elements.reserveCapacity(min(count, 1024))
                for _ in 0..<count {
                    guard let element = try value(depth: depth + 1) else { return nil }
                    elements.append(element)
                }
                switch type {
                case UInt8(ascii: "*"): return .array(elements)
                case UInt8(ascii: "~"): return .set(elements)
                default: return .push(elements)
                }
            case UInt8(ascii: "%"):
                guard let count = try length(allowNull: false, start: start) else { return nil }
                guard depth < limits.maxDepth else { throw fail("nesting deeper than \(limits.maxDepth)", at: start) }
                guard count <= limits.maxAggregateCount else { throw fail("map of \(count) pairs over the limit", at: start) }
                var entries: [RESPValue.KeyValue] = []
                entries.reserveCapacity(min(count, 1024))
                for _ in 0..<count {
                    guard let key = try value(depth: depth + 1), let value = try value(depth: depth + 1) else { return nil }
                    entries.append(RESPValue.KeyValue(key: key, value: value))
                }
                return .map(entries)
            default:
                throw fail("unknown type byte \(type)", at: start)
            }
        }

        /// The content of a CRLF-terminated line starting at `index`; moves past the CRLF.
        mutating func line() throws(RESPDecodeError) -> Range<Int>? {
            let start = index
            var i = start
            let limit = min(bytes.count, start + limits.maxLineLength + 2)
            while i < limit {
                let byte = bytes[i]
                if byte == UInt8(ascii: "\r") {
                    guard i + 1 < bytes.count else { return nil }
                    guard bytes[i + 1] == UInt8(ascii: "\n") else { throw fail("CR not followed by LF", at: i) }
                    index = i + 2
                    return start..<i
                }
                if byte == UInt8(ascii: "\n") { throw fail("LF without CR", at: i) }
                i += 1
            }
            if i - start > limits.maxLineLength { throw fail("line longer than \(limits.maxLineLength) bytes", at: start) }
            return nil
        }

        /// A length header (`$5`, `*3`); -1 only where RESP2 allows a null.
        mutating func length(allowNull: Bool, start: Int) throws(RESPDecodeError) -> Int? {
            guard let range = try line() else { return nil }
            if allowNull, range.count == 2, bytes[range.lowerBound] == UInt8(ascii: "-"), bytes[range.lowerBound + 1] == UInt8(ascii: "1") {
                return -1
            }
            guard !range.isEmpty, range.count <= 18, range.allSatisfy({ isDigit(bytes[$0]) }) else {
                throw fail("invalid length", at: range.lowerBound)
            }
            var n = 0
            for i in range { n = n * 10 + Int(bytes[i] - UInt8(ascii: "0")) }
            return n
        }

        /// `count` bytes followed by CRLF.
        mutating func blob(_ count: Int) throws(RESPDecodeError) -> Range<Int>? {
            guard count <= limits.maxBulkLength else { throw fail("string of \(count) bytes over the limit", at: index) }
            let start = index
            guard bytes.count - start >= count + 2 else { return nil }
            guard bytes[start + count] == UInt8(ascii: "\r"), bytes[start + count + 1] == UInt8(ascii: "\n") else {
                throw fail("string not terminated by CRLF", at: start + count)
            }
            index = start + count + 2
            return start..<start + count
        }

        func text(_ range: Range<Int>) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }

        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

        func integer(_ range: Range<Int>) -> Int64? {
            var digits = range[...]
            var negative = false
            if let first = digits.first, bytes[first] == UInt8(ascii: "-") || bytes[first] == UInt8(ascii: "+") {
                negative = bytes[first] == UInt8(ascii: "-")
                digits = digits.dropFirst()
            }
            guard !digits.isEmpty else { return nil }
            var value: Int64 = 0
            for i in digits {
                guard isDigit(bytes[i]) else { return nil }
                let digit = Int64(bytes[i] - UInt8(ascii: "0"))
                // Accumulate negatively so Int64.min parses too.
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.subtractingReportingOverflow(digit)
                guard !o1, !o2 else { return nil }
                value = s
            }
            if negative { return value }
            let (positive, overflow) = (0 as Int64).subtractingReportingOverflow(value)
            return overflow ? nil : positive
        }

        func double(_ range: Range<Int>) -> Double? {
            let s = text(range)
            switch s {
            case "inf", "+inf": return .infinity
            case "-inf": return -.infinity
            case "nan", "-nan": return .nan
            default: break
            }
            // Only plain decimal notation: Swift's parser would also take hex floats and "infinity".
            guard !s.isEmpty,
                s.utf8.allSatisfy({
                    isDigit($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e")
                        || $0 == UInt8(ascii: "E")
                })
            else {
                return nil
            }
            return Double(s)
        }
    }
}
