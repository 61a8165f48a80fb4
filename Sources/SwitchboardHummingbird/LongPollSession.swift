import Foundation
import Logging
import NIOCore
import Switchboard
import Synchronization

/// The transport of one phoenix.js long-poll session: messages wait in a bounded buffer until a
/// poll (`GET`) takes them. Lives on the event loop of the connection that opened it; requests
/// arriving on other connections hop there.
final class LongPollSession: Transport, @unchecked Sendable {
    // @unchecked: every mutable property is used only on `eventLoop` (the session calls the
    // transport methods there, and the request router hops there for every request).

    /// What a poll is answered with.
    enum PollAnswer {
        /// Messages, each already a JSON string literal.
        case messages([ByteBuffer])
        /// Nothing arrived within the window.
        case noContent
        /// The session is gone: the client must open a new one.
        case gone
    }

    let token: String
    let eventLoop: any EventLoop
    let broadcastFormat: FrameFormat
    private(set) var session: PhoenixSession?
    private let registry: LongPollRegistry
    private let window: TimeAmount
    private let outboundLimit: OutboundLimit
    private let logger: Logger
    private var buffered: [ByteBuffer] = []
    private var bufferedBytes = 0
    private var waiter: ((PollAnswer) -> Void)?
    private var waiterTimer: Scheduled<Void>?
    private var expiry: Scheduled<Void>?
    private(set) var closed = false

    init(token: String, eventLoop: any EventLoop, serializer: PhoenixSerializer, registry: LongPollRegistry, window: TimeAmount, maxQueuedBytes: Int, logger: Logger) {
        self.token = token
        self.eventLoop = eventLoop
        self.broadcastFormat = serializer == .v1 ? .phoenixV1LongPoll : .phoenixV2LongPoll
        self.registry = registry
        self.window = window
        self.outboundLimit = OutboundLimit(maxQueuedBytes: maxQueuedBytes)
        self.logger = logger
    }

    /// Starts the session (its socket-id listener) and its expiry clock.
    func start(_ session: PhoenixSession) {
        eventLoop.preconditionInEventLoop()
        self.session = session
        session.start()
        scheduleExpiry()
    }

    /// A poll: answered at once when messages wait, else on the first message or after the window.
    /// A newer poll replaces a waiting one (which gets `noContent`).
    func poll(_ answer: @escaping (PollAnswer) -> Void) {
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

    /// The connection of a waiting poll went away: forget it (later messages wait for the next poll).
    func pollAbandoned() {
        eventLoop.preconditionInEventLoop()
        guard takeWaiter() != nil else { return }
        scheduleExpiry()
    }

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
    private func scheduleExpiry() {
        guard !closed else { return }
        expiry?.cancel()
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        expiry = eventLoop.scheduleTask(in: .nanoseconds(window.nanoseconds * 3 / 2)) {
            loopBound.value.logger.debug("long-poll session expired")
            loopBound.value.close(.idleTimeout)
        }
    }

    // MARK: Transport

    func send(_ frame: EncodedFrame) {
        guard let message = FrameFormat.longPollMessage(frame) else { return }  // never binary over long-poll
        enqueue(message)
    }

    func sendPreEncoded(_ frame: ByteBuffer) {
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

    func flush() {
        guard !buffered.isEmpty, let waiting = takeWaiter() else { return }
        waiting(.messages(takeBuffered()))
        scheduleExpiry()
    }

    /// Ends the session: its channels terminate, and every later request gets `410`.
    func close(_ reason: CloseReason) {
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

/// The long-poll sessions of one Phoenix socket, by token.
///
/// Tokens are 192 random bits (base64url), so they cannot be guessed; a session exists only on
/// the node that opened it (see README: with the Redis broker, a load balancer must route
/// long-poll requests by token or keep them sticky).
final class LongPollRegistry: Sendable {
    private let sessions = Mutex<[String: LongPollSession]>([:])

    init() {}

    func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    func add(_ session: LongPollSession) {
        sessions.withLock { $0[session.token] = session }
    }

    func session(_ token: String) -> LongPollSession? {
        sessions.withLock { $0[token] }
    }

    func remove(_ token: String) {
        sessions.withLock { _ = $0.removeValue(forKey: token) }
    }

    /// Sessions open now.
    var count: Int { sessions.withLock { $0.count } }
}
