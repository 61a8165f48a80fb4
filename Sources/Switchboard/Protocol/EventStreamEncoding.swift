import NIOCore

/// Server-Sent Events wire form (the `text/event-stream` format of the HTML standard).
///
/// An event is `id:`, `event:` and `data:` lines ended by a blank line. The JSON we write never
/// holds a raw line break (string escapes cover them), so a payload is always one `data:` line;
/// line breaks in ids and event names, which would end the field early, become spaces.
public enum EventStreamEncoding {
    /// Appends one event.
    public static func writeEvent(id: String?, event: String?, data: JSONValue, into buffer: inout ByteBuffer) {
        writeEvent(id: id, event: event, into: &buffer) { JSONWriter.write(data, into: &$0) }
    }

    /// Appends one event whose data is JSON text already encoded (one line: JSON text we write
    /// holds no raw line break).
    static func writeEvent(id: String?, event: String?, dataText: ByteBuffer, into buffer: inout ByteBuffer) {
        writeEvent(id: id, event: event, into: &buffer) {
            var text = dataText
            $0.writeBuffer(&text)
        }
    }

    private static func writeEvent(id: String?, event: String?, into buffer: inout ByteBuffer, data: (inout ByteBuffer) -> Void) {
        if let id {
            buffer.writeStaticString("id: ")
            writeField(id, into: &buffer)
            buffer.writeStaticString("\n")
        }
        if let event {
            buffer.writeStaticString("event: ")
            writeField(event, into: &buffer)
            buffer.writeStaticString("\n")
        }
        buffer.writeStaticString("data: ")
        data(&buffer)
        buffer.writeStaticString("\n\n")
    }

    /// One event in a new buffer.
    public static func event(id: String?, event: String?, data: JSONValue) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 64 + (event?.utf8.count ?? 0) + (id?.utf8.count ?? 0))
        writeEvent(id: id, event: event, data: data, into: &buffer)
        return buffer
    }

    /// The event id of a broadcast: its topic and its position in the topic (`room:lobby:17`).
    public static func id(topic: String, position: UInt64) -> String {
        "\(topic):\(position)"
    }

    /// A comment line (ignored by clients; keeps proxies and idle timers from closing the stream).
    public static func comment(_ text: String) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: text.utf8.count + 4)
        buffer.writeStaticString(": ")
        writeField(text, into: &buffer)
        buffer.writeStaticString("\n\n")
        return buffer
    }

    /// The reconnection delay hint for `EventSource`.
    public static func retry(milliseconds: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 24)
        buffer.writeString("retry: \(milliseconds)\n\n")
        return buffer
    }

    private static func writeField(_ text: String, into buffer: inout ByteBuffer) {
        if text.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) {
            buffer.writeString(String(text.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 }))
        } else {
            buffer.writeString(text)
        }
    }
}

extension FrameFormat {
    /// Server-Sent Events: `id: <topic>:<position>`, `event: <event>`, `data: <JSON payload>`.
    /// Binary payloads have no SSE form and are not sent to SSE subscribers.
    public static let serverSentEvents = FrameFormat(name: "sse") { broadcast in
        guard case .json(let json) = broadcast.payload else { return nil }
        var buffer = ByteBufferAllocator().buffer(capacity: 96 + broadcast.topic.utf8.count + broadcast.event.utf8.count)
        let id = broadcast.position.map { EventStreamEncoding.id(topic: broadcast.topic, position: $0) }
        if let text = broadcast.encodedJSON {
            EventStreamEncoding.writeEvent(id: id, event: broadcast.event, dataText: text, into: &buffer)
        } else {
            EventStreamEncoding.writeEvent(id: id, event: broadcast.event, data: json, into: &buffer)
        }
        return buffer
    }
}
