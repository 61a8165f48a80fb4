import Foundation
import Logging

/// A swift-log handler that passes every entry on to another handler (text, JSON, anything) and
/// remembers the last warnings and errors in a bounded ring buffer: the dashboard's "recent errors".
///
/// Wrap the logger once where it is made (`logger.handler = RecentErrorsLogHandler(wrapping:
/// logger.handler)`); every copy of that logger shares the same `RecentErrors` buffer, which
/// `recentErrors(of:)` finds again.
struct RecentErrorsLogHandler: LogHandler {
    var underlying: any LogHandler
    /// Where remembered entries go (shared by every copy of this handler).
    let recentErrors: RecentErrors
    /// Entries at this level or above are remembered (below the logger's level they never arrive).
    var minimumLevel: Logger.Level = .warning

    init(wrapping underlying: any LogHandler, recentErrors: RecentErrors = RecentErrors()) {
        self.underlying = underlying
        self.recentErrors = recentErrors
    }

    /// The buffer of a logger wrapped by this handler, or a new empty one (nothing to show).
    static func recentErrors(of logger: Logger) -> RecentErrors {
        (logger.handler as? RecentErrorsLogHandler)?.recentErrors ?? RecentErrors()
    }

    var logLevel: Logger.Level {
        get { underlying.logLevel }
        set { underlying.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { underlying.metadata }
        set { underlying.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { underlying.metadataProvider }
        set { underlying.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { underlying[metadataKey: key] }
        set { underlying[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        if event.level >= minimumLevel {
            var text = event.message.description
            // Explicit metadata says which topic or session; the handler's own is the same every time.
            if let metadata = event.metadata, !metadata.isEmpty {
                text += " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            }
            recentErrors.append(RecentErrors.Entry(time: Date(), level: event.level, label: event.source, message: text))
        }
        underlying.log(event: event)
    }
}
