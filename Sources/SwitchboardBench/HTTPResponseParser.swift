import NIOCore

/// Reads HTTP/1.1 responses off a keep-alive connection: status line, headers, and a body framed
/// by `Content-Length`, chunked encoding, or the end of the connection. Bodies are skipped.
struct HTTPResponseParser {
    struct Response {
        var status: Int
        /// The server asked to close the connection after this response.
        var closes: Bool
    }

    struct ParseError: Error, CustomStringConvertible {
        var description: String
    }

    private enum State {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkEnd
        case trailers
        case untilClose
    }

    private var state = State.head
    private var status = 0
    private var closes = false
    static let maxHeadSize = 64 * 1024

    /// The next complete response in `buffer`, or nil when more bytes are needed.
    mutating func next(from buffer: inout ByteBuffer) throws -> Response? {
        while true {
            switch state {
            case .head:
                guard let end = Self.find(crlfcrlf: buffer) else {
                    if buffer.readableBytes > Self.maxHeadSize { throw ParseError(description: "response head over 64 KiB") }
                    return nil
                }
                let head = buffer.readString(length: end) ?? ""
                try startResponse(head)
            case .body(let remaining):
                let skip = min(remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: skip)
                if remaining - skip > 0 {
                    state = .body(remaining: remaining - skip)
                    return nil
                }
                return finish()
            case .chunkSize:
                guard let line = Self.readLine(&buffer) else { return nil }
                let hex = line.prefix { $0 != ";" }.trimmingSpaces
                guard let size = Int(hex, radix: 16), size >= 0 else { throw ParseError(description: "bad chunk size \(line)") }
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let skip = min(remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: skip)
                if remaining - skip > 0 {
                    state = .chunkData(remaining: remaining - skip)
                    return nil
                }
                state = .chunkEnd
            case .chunkEnd:
                guard let line = Self.readLine(&buffer) else { return nil }
                guard line.isEmpty else { throw ParseError(description: "chunk not followed by CRLF") }
                state = .chunkSize
            case .trailers:
                guard let line = Self.readLine(&buffer) else { return nil }
                if line.isEmpty { return finish() }
            case .untilClose:
                buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                return nil
            }
        }
    }

    /// The response whose body runs to the end of the connection, if one is open.
    mutating func connectionClosed() -> Response? {
        if case .untilClose = state { return finish() }
        return nil
    }

    private mutating func startResponse(_ head: String) throws {
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: true).makeIterator()
        guard let statusLine = lines.next() else { throw ParseError(description: "empty response head") }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else {
            throw ParseError(description: "bad status line \(statusLine)")
        }
        status = code
        closes = parts[0] == "HTTP/1.0"
        var length: Int?
        var chunked = false
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces.lowercased()
            switch name {
            case "content-length": length = Int(value)
            case "transfer-encoding": chunked = value.contains("chunked")
            case "connection":
                if value.contains("close") { closes = true }
                if value.contains("keep-alive") { closes = false }
            default: break
            }
        }
        if (100..<200).contains(code) {
            state = .head  // interim response: ignore, read the real one
            return
        }
        if code == 204 || code == 304 {
            state = .body(remaining: 0)
        } else if chunked {
            state = .chunkSize
        } else if let length {
            state = .body(remaining: length)
        } else {
            closes = true
            state = .untilClose
        }
    }

    private mutating func finish() -> Response {
        state = .head
        return Response(status: status, closes: closes)
    }

    private static func find(crlfcrlf buffer: ByteBuffer) -> Int? {
        buffer.withUnsafeReadableBytes { bytes in
            guard bytes.count >= 4 else { return nil }
            for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
                return i + 4
            }
            return nil
        }
    }

    /// One CRLF-terminated line without its CRLF, consumed; nil when incomplete.
    private static func readLine(_ buffer: inout ByteBuffer) -> String? {
        let end: Int? = buffer.withUnsafeReadableBytes { bytes in
            guard bytes.count >= 2 else { return nil }
            for i in 0...(bytes.count - 2) where bytes[i] == 13 && bytes[i + 1] == 10 { return i }
            return nil
        }
        guard let end else { return nil }
        let line = buffer.readString(length: end) ?? ""
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
