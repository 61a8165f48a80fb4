import NIOCore
import Switchboard

/// The messages nodes exchange about presence on the Redis channel `<keyPrefix>presence`.
///
/// Text, one header line and one line per entry, so metas travel as the exact JSON text their
/// node sends to clients (key order kept, nothing re-encoded):
///
/// ```
/// SBP1 delta <node> <seq>                       one or more changes, then lines:
/// J <topic JSON> <key JSON> <ref> <owner> <meta JSON>
/// L <topic JSON> <key JSON> <ref>
/// SBP1 hb <node> <seq>                          alive; <seq> is its last delta
/// SBP1 sync <node> <target>                     asks <target> (a node, or *) for its state
/// SBP1 state <node> <seq> <part> <last> ...J lines   the node's own entries, in parts
/// SBP1 bye <node> <seq>                         stopping: forget its entries now
/// ```
///
/// Fields are separated by one space. Topic and key are JSON string literals (read by scanning
/// to their closing quote, which escapes make unambiguous, so they may hold spaces); the meta is
/// the rest of its line. JSON text as we write it never holds a raw line break.
enum PresenceWire: Equatable {
    case delta(node: String, seq: UInt64, updates: [PresenceUpdate])
    case heartbeat(node: String, seq: UInt64)
    case sync(node: String, target: String)
    case state(node: String, seq: UInt64, part: Int, last: Bool, updates: [PresenceUpdate])
    case bye(node: String, seq: UInt64)

    static let magic = "SBP1"

    var node: String {
        switch self {
        case .delta(let node, _, _), .heartbeat(let node, _), .sync(let node, _), .state(let node, _, _, _, _), .bye(let node, _):
            return node
        }
    }

    func encoded() -> ByteBuffer {
        var buffer = ByteBuffer()
        switch self {
        case .delta(let node, let seq, let updates):
            buffer.writeString("\(Self.magic) delta \(node) \(seq)\n")
            Self.write(updates, into: &buffer)
        case .heartbeat(let node, let seq):
            buffer.writeString("\(Self.magic) hb \(node) \(seq)\n")
        case .sync(let node, let target):
            buffer.writeString("\(Self.magic) sync \(node) \(target)\n")
        case .state(let node, let seq, let part, let last, let updates):
            buffer.writeString("\(Self.magic) state \(node) \(seq) \(part) \(last ? 1 : 0)\n")
            Self.write(updates, into: &buffer)
        case .bye(let node, let seq):
            buffer.writeString("\(Self.magic) bye \(node) \(seq)\n")
        }
        return buffer
    }

    private static func write(_ updates: [PresenceUpdate], into buffer: inout ByteBuffer) {
        for update in updates {
            for operation in update.operations {
                switch operation {
                case .join(let key, let ref, let owner, let meta):
                    buffer.writeStaticString("J ")
                    JSONWriter.writeString(update.topic, into: &buffer)
                    buffer.writeStaticString(" ")
                    JSONWriter.writeString(key, into: &buffer)
                    buffer.writeString(" \(ref) \(owner) ")
                    buffer.writeBytes(meta)
                    buffer.writeStaticString("\n")
                case .leave(let key, let ref):
                    buffer.writeStaticString("L ")
                    JSONWriter.writeString(update.topic, into: &buffer)
                    buffer.writeStaticString(" ")
                    JSONWriter.writeString(key, into: &buffer)
                    buffer.writeString(" \(ref)\n")
                }
            }
        }
    }

    struct Malformed: Error {}

    init(decoding buffer: ByteBuffer) throws {
        let bytes = Array(buffer.readableBytesView)
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)[...]
        guard let headerLine = lines.popFirst() else { throw Malformed() }
        let header = String(decoding: headerLine, as: UTF8.self).split(separator: " ").map(String.init)
        guard header.count >= 4, header[0] == Self.magic else { throw Malformed() }
        let node = header[2]
        switch header[1] {
        case "delta":
            guard let seq = UInt64(header[3]) else { throw Malformed() }
            self = .delta(node: node, seq: seq, updates: try Self.updates(lines, node: node))
        case "hb":
            guard let seq = UInt64(header[3]) else { throw Malformed() }
            self = .heartbeat(node: node, seq: seq)
        case "sync":
            self = .sync(node: node, target: header[3])
        case "bye":
            guard let seq = UInt64(header[3]) else { throw Malformed() }
            self = .bye(node: node, seq: seq)
        case "state":
            guard header.count == 6, let seq = UInt64(header[3]), let part = Int(header[4]) else { throw Malformed() }
            self = .state(node: node, seq: seq, part: part, last: header[5] == "1", updates: try Self.updates(lines, node: node))
        default:
            throw Malformed()
        }
    }

    /// The entry lines, grouped into one update per run of lines of the same topic.
    private static func updates(_ lines: ArraySlice<ArraySlice<UInt8>>, node: String) throws -> [PresenceUpdate] {
        var updates: [PresenceUpdate] = []
        for line in lines {
            var rest = line
            guard let kind = rest.popFirst(), rest.popFirst() == UInt8(ascii: " ") else { throw Malformed() }
            let topic = try jsonString(&rest)
            guard rest.popFirst() == UInt8(ascii: " ") else { throw Malformed() }
            let key = try jsonString(&rest)
            guard rest.popFirst() == UInt8(ascii: " ") else { throw Malformed() }
            let operation: PresenceOperation
            switch kind {
            case UInt8(ascii: "J"):
                let ref = word(&rest)
                guard let owner = UInt64(word(&rest)), rest.first == UInt8(ascii: "{"), rest.last == UInt8(ascii: "}") else { throw Malformed() }
                operation = .join(key: key, ref: ref, owner: owner, meta: Array(rest))
            case UInt8(ascii: "L"):
                operation = .leave(key: key, ref: String(decoding: rest, as: UTF8.self))
            default:
                throw Malformed()
            }
            if updates.last?.topic == topic {
                updates[updates.count - 1].operations.append(operation)
            } else {
                updates.append(PresenceUpdate(node: node, topic: topic, operations: [operation]))
            }
        }
        return updates
    }

    /// Reads a JSON string literal from the front of `bytes`.
    private static func jsonString(_ bytes: inout ArraySlice<UInt8>) throws -> String {
        guard bytes.first == UInt8(ascii: "\"") else { throw Malformed() }
        var index = bytes.index(after: bytes.startIndex)
        var escaped = false
        while index < bytes.endIndex {
            let byte = bytes[index]
            if escaped {
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                break
            }
            index = bytes.index(after: index)
        }
        guard index < bytes.endIndex else { throw Malformed() }
        let literal = bytes[bytes.startIndex...index]
        bytes = bytes[bytes.index(after: index)...]
        guard case .string(let string) = try JSONParser.parse(literal) else { throw Malformed() }
        return string
    }

    /// Reads up to the next space (consumed) or the end.
    private static func word(_ bytes: inout ArraySlice<UInt8>) -> String {
        let end = bytes.firstIndex(of: UInt8(ascii: " ")) ?? bytes.endIndex
        let word = String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self)
        bytes = end < bytes.endIndex ? bytes[bytes.index(after: end)...] : bytes[end...]
        return word
    }
}
