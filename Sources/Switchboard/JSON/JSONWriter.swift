import NIOCore

/// Writes compact JSON text.
public enum JSONWriter {
    /// Appends the JSON text of `value` to a byte array.
    public static func write(_ value: JSONValue, into bytes: inout [UInt8]) {
        var sink = ArraySink(bytes: bytes)
        bytes = []
        sink.write(value)
        bytes = sink.bytes
    }

    /// Appends the JSON text of `value` to a buffer.
    public static func write(_ value: JSONValue, into buffer: inout ByteBuffer) {
        var sink = BufferSink(buffer: buffer)
        buffer = ByteBuffer()
        sink.write(value)
        buffer = sink.buffer
    }

    /// Appends a JSON string literal (quoted, escaped).
    public static func writeString(_ string: String, into buffer: inout ByteBuffer) {
        var sink = BufferSink(buffer: buffer)
        buffer = ByteBuffer()
        sink.writeString(string)
        buffer = sink.buffer
    }

    /// The JSON text of `value` as a new buffer.
    public static func buffer(_ value: JSONValue) -> ByteBuffer {
        var buffer = ByteBuffer()
        write(value, into: &buffer)
        return buffer
    }
}

protocol JSONSink {
    mutating func append(_ byte: UInt8)
    mutating func append(_ bytes: UnsafeRawBufferPointer)
    mutating func append(_ string: String)
}

extension JSONSink {
    mutating func write(_ value: JSONValue) {
        switch value {
        case .null: append("null")
        case .bool(let b): append(b ? "true" : "false")
        case .int(let i): append(String(i))
        case .double(let d):
            if d.isFinite {
                // Swift's shortest round-trip form ("2.0", "0.1", "1e+20"): a double reads back as a double.
                append(String(d))
            } else {
                append("null")
            }
        case .string(let s): writeString(s)
        case .array(let elements):
            append(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { append(UInt8(ascii: ",")) }
                first = false
                write(element)
            }
            append(UInt8(ascii: "]"))
        case .object(let members):
            append(UInt8(ascii: "{"))
            var first = true
            for (key, member) in members {
                if !first { append(UInt8(ascii: ",")) }
                first = false
                writeString(key)
                append(UInt8(ascii: ":"))
                write(member)
            }
            append(UInt8(ascii: "}"))
        }
    }

    mutating func writeString(_ string: String) {
        append(UInt8(ascii: "\""))
        var s = string
        s.withUTF8 { utf8 in
            var runStart = 0
            for i in 0..<utf8.count {
                let c = utf8[i]
                guard c < 0x20 || c == 0x22 || c == 0x5C else { continue }
                if runStart < i { append(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[runStart..<i])) }
                runStart = i + 1
                switch c {
                case 0x22: append("\\\"")
                case 0x5C: append("\\\\")
                case 0x0A: append("\\n")
                case 0x0D: append("\\r")
                case 0x09: append("\\t")
                case 0x08: append("\\b")
                case 0x0C: append("\\f")
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    append("\\u00")
                    append(hex[Int(c >> 4)])
                    append(hex[Int(c & 0xF)])
                }
            }
            if runStart < utf8.count { append(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[runStart...])) }
        }
        append(UInt8(ascii: "\""))
    }
}

struct ArraySink: JSONSink {
    var bytes: [UInt8]
    mutating func append(_ byte: UInt8) { bytes.append(byte) }
    mutating func append(_ raw: UnsafeRawBufferPointer) { bytes.append(contentsOf: raw) }
    mutating func append(_ string: String) { bytes.append(contentsOf: string.utf8) }
}

struct BufferSink: JSONSink {
    var buffer: ByteBuffer
    mutating func append(_ byte: UInt8) { buffer.writeInteger(byte) }
    mutating func append(_ raw: UnsafeRawBufferPointer) { buffer.writeBytes(raw) }
    mutating func append(_ string: String) { buffer.writeString(string) }
}
