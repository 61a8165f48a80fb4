import Foundation
import Logging
import NIOCore
import Switchboard
import Synchronization

/// The transport of one phoenix.js long-poll session: messages wait in a bounded buffer until a
/// poll (`GET`) takes them. Lives on the event loop of the connection that opened it; requests
/// arriving on other connections hop there.
public final class LongPollSession: Transport, @unchecked Sendable {
    // @unchecked: every mutable property is used only on `eventLoop` (the session calls the
    // transport methods there, and the HTTP endpoints hop there for every request).

    /// What a poll is answered with.
    public enum PollAnswer {
        /// Messages, each already a JSON string literal.
        case messages([ByteBuffer])
        /// Nothing arrived within the window.
        case noContent
        /// The session is gone: the client must open a new one.
        case gone
    }

    public let token: String
    public let eventLoop: any EventLoop
    public let broadcastFormat: FrameFormat
    public private(set) var session: PhoenixSession?
    private let registry: LongPollRegistry
    private let window: TimeAmount
    private let outboundLimit: OutboundLimit
    private let logger: Logger
    private var buffered: [ByteBuffer] = []
    private var bufferedBytes = 0
    private var waiter: ((PollAnswer) -> Void)?
    private var waiterTimer: Scheduled<Void>?
    private var expiry: Scheduled<Void>?
    public private(set) var closed = false

    public init(
        token: String,
        eventLoop: any EventLoop,
        serializer: PhoenixSerializer,
        registry: LongPollRegistry,
        window: TimeAmount,
        maxQueuedBytes: Int,
        logger: Logger
    ) {
        self.token = token
        self.eventLoop = eventLoop
        self.broadcastFormat = serializer == .v1 ? .phoenixV1LongPoll : .phoenixV2LongPoll
        self.registry = registry
        self.window = window
        self.outboundLimit = OutboundLimit(maxQueuedBytes: maxQueuedBytes)
        self.logger = logger
    }

    /// Starts the session (its socket-id listener) and its expiry clock.
    public func start(_ session: PhoenixSession) {
        eventLoop.preconditionInEventLoop()
        self.session = session
        session.start()
        scheduleExpiry()
    }

    /// A poll: answered at once when messages wait, else on the first message or after the window.
    /// A newer poll replaces a waiting one (which gets `noContent`).
    public func poll(_ answer: @escaping (PollAnswer) -> Void) {
        eventLoop.preconditionInEventLoop()
        guard !closed else { return answer(.gone) }
        expiry?.cancel()
        expiry = nil
        if let previous = takeWaiter() { previous(.noContent) }
        if !buffered.isEmpty {
            answer(.messages(takeBuffered()))
            scheduleExpiry()
            return
        }
        waiter = answer
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        waiterTimer = eventLoop.scheduleTask(in: window) {
            let me = loopBound.value
            me.waiterTimer = nil
            if let waiting = me.takeWaiter() {
                waiting(.noContent)
                me.scheduleExpiry()
            }
        }
    }

    /// The connection of a waiting poll went away: forget it (later messages wait for the next
    /// poll). A client that closes its own poll is leaving (a page unloading, `disconnect()`), and
    /// one that lost it to the network polls again at once, so the session ends after
    /// `abandonedPollGrace` without a poll rather than 1.5 windows: its presences go within
    /// seconds, as an SSE stream's do.
    public func pollAbandoned() {
        eventLoop.preconditionInEventLoop()
        guard takeWaiter() != nil else { return }
        scheduleExpiry(in: min(Self.abandonedPollGrace, .nanoseconds(window.nanoseconds * 3 / 2)))
    }

    /// How long a session whose waiting poll was abandoned lives without a new poll.
    static let abandonedPollGrace: TimeAmount = .seconds(2)

    private func takeWaiter() -> ((PollAnswer) -> Void)? {
        waiterTimer?.cancel()
        waiterTimer = nil
        defer { waiter = nil }
        return waiter
    }

    private func takeBuffered() -> [ByteBuffer] {
        defer {
            buffered = []
            bufferedBytes = 0
        }
        return buffered
    }

    /// Phoenix ends a session that has not been polled for 1.5 windows.
    private func scheduleExpiry(in delay: TimeAmount? = nil) {
        guard !closed else { return }
        expiry?.cancel()
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        expiry = eventLoop.scheduleTask(in: delay ?? .nanoseconds(window.nanoseconds * 3 / 2)) {
            loopBound.value.logger.debug("long-poll session expired")
            loopBound.value.close(.idleTimeout)
        }
    }

    // MARK: Transport

    public func send(_ frame: EncodedFrame) {
        guard let message = FrameFormat.longPollMessage(frame) else { return }  // never binary over long-poll
        enqueue(message)
    }

    public func sendPreEncoded(_ frame: ByteBuffer) {
        enqueue(frame)
    }

    private func enqueue(_ message: ByteBuffer) {
        guard !closed else { return }
        bufferedBytes += message.readableBytes
        buffered.append(message)
        if outboundLimit.isExceeded(queuedBytes: bufferedBytes, logger: logger) {
            close(.slowConsumer)  // too much waiting for a poll
        }
    }

    public func flush() {
        guard !buffered.isEmpty, let waiting = takeWaiter() else { return }
        waiting(.messages(takeBuffered()))
        scheduleExpiry()
    }

    /// Ends the session: its channels terminate, and every later request gets `410`.
    public func close(_ reason: CloseReason) {
        guard !closed else { return }
        closed = true
        expiry?.cancel()
        expiry = nil
        registry.remove(token)
        buffered = []
        bufferedBytes = 0
        takeWaiter()?(.gone)
        let session = self.session
        self.session = nil  // the session refers to this transport: break the cycle
        session?.transportClosed()
    }
}

extension LongPollSession {
    /// One message of a long-poll POST.
    public enum Message {
        case text(ByteBuffer)
        case binary(ByteBuffer)
        case invalid(String)
    }

    /// The messages of a long-poll POST: with `application/x-ndjson`, up to 100 lines (`[`: a V2
    /// text message, else a base64 binary frame; empty lines skipped); otherwise the whole body is
    /// one text message.
    public static func messages(_ body: ByteBuffer, contentType: String?) -> [Message] {
        guard contentType == "application/x-ndjson" else { return [.text(body)] }
        var messages: [Message] = []
        let text = String(buffer: body)
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }).prefix(100) {
            if line.hasPrefix("[") {
                messages.append(.text(ByteBuffer(string: String(line))))
            } else if let data = Data(base64Encoded: String(line)) {
                messages.append(.binary(ByteBuffer(bytes: data)))
            } else {
                messages.append(.invalid("a batch line is neither JSON nor base64"))
            }
        }
        return messages
    }
}

/// The long-poll sessions of one Phoenix socket, by token.
///
/// Tokens are 192 random bits (base64url), so they cannot be guessed; a session exists only on
/// the node that opened it (see README: with the Redis broker, a load balancer must route
/// long-poll requests by token or keep them sticky).
public final class LongPollRegistry: Sendable {
    private let sessions = Mutex<[String: LongPollSession]>([:])

    public init() {}

    public func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    public func add(_ session: LongPollSession) {
        sessions.withLock { $0[session.token] = session }
    }

    public func session(_ token: String) -> LongPollSession? {
        sessions.withLock { $0[token] }
    }

    public func remove(_ token: String) {
        sessions.withLock { _ = $0.removeValue(forKey: token) }
    }

    /// Sessions open now.
    public var count: Int { sessions.withLock { $0.count } }
}
