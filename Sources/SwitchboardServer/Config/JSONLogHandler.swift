import Foundation
import Logging
import NIOCore
import Switchboard
import Synchronization

/// A swift-log handler that writes one JSON object per line (`--log-format json`):
/// `{"timestamp": "2026-11-23T10:00:00.123Z", "level": "info", "label": "switchboard",
/// "message": "…", "metadata": {…}, "source": "…"}`, for log collectors that parse lines.
struct JSONLogHandler: LogHandler {
    /// Where lines go; one lock per stream, so concurrent lines never interleave.
    final class Output: Sendable {
        let write: @Sendable (String) -> Void
        let lock = Mutex<Void>(())

        init(write: @escaping @Sendable (String) -> Void) {
            self.write = write
        }

        func emit(_ line: String) {
            lock.withLock { _ in write(line) }
        }

        /// Standard error, unbuffered.
        static let standardError = Output { line in
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    let label: String
    let output: Output
    /// The clock (injected in tests).
    let now: @Sendable () -> Date
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(
        label: String,
        output: Output = .standardError,
        metadataProvider: Logger.MetadataProvider? = nil,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.label = label
        self.output = output
        self.metadataProvider = metadataProvider
        self.now = now
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        if let error = event.error { merged["error"] = "\(error)" }
        let object: [String: JSONValue] = [
            "timestamp": .string(Self.timestamp(now())),
            "level": .string(event.level.rawValue),
            "label": .string(label),
            "message": .string(event.message.description),
            "source": .string(event.source),
            "metadata": .object(merged.mapValues(Self.json)),
        ]
        var buffer = JSONWriter.buffer(.object(object))
        buffer.writeString("\n")
        output.emit(String(buffer: buffer))
    }

    /// Metadata values as JSON: strings, arrays and dictionaries keep their shape.
    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let string): return .string(string)
        case .stringConvertible(let convertible): return .string(convertible.description)
        case .array(let array): return .array(array.map(json))
        case .dictionary(let dictionary): return .object(dictionary.mapValues(json))
        }
    }

    /// RFC 3339 in UTC with milliseconds.
    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}
