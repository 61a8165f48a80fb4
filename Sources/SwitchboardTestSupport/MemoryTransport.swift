import NIOConcurrencyHelpers
import NIOCore
import Switchboard

/// A transport with no socket, for testing sessions and channels without a network: it keeps
/// what the session sends (as text) and how it was closed, and tells its session when closed.
///
/// ```swift
/// let transport = MemoryTransport(eventLoop: loop, unidirectional: true)
/// let session = PhoenixSession(socket: socket, transport: transport, serializer: .v2, connection: transport.connection(), logger: logger)
/// transport.attach(session)
/// ```
public final class MemoryTransport: Transport, @unchecked Sendable {
    // @unchecked: all mutable state is behind `state`'s lock; the session kept there is only
    // called on `eventLoop` (the transport contract: `close` is called there).
    public let eventLoop: any EventLoop
    public let broadcastFormat: FrameFormat
    public let isUnidirectional: Bool

    private struct State {
        var sent: [String] = []
        var closed: CloseReason?
        var session: (any Session)?
    }
    private let state = NIOLockedValueBox(State())

    public init(eventLoop: any EventLoop, broadcastFormat: FrameFormat = .serverSentEvents, unidirectional: Bool = false) {
        self.eventLoop = eventLoop
        self.broadcastFormat = broadcastFormat
        self.isUnidirectional = unidirectional
    }

    /// A connection whose `close` closes this transport.
    public func connection(socketID: String? = nil, assigns: Assigns = Assigns()) -> Connection {
        Connection(socketID: socketID, assigns: assigns, transport: "memory") { [weak self] reason in
            guard let self else { return }
            self.eventLoop.execute { self.close(reason) }
        }
    }

    /// The session told when the transport closes (held until then).
    public func attach(_ session: any Session) {
        state.withLockedValue { $0.session = session }
    }

    /// Everything sent so far, each message or pre-encoded broadcast as text, in order.
    public var sent: [String] { state.withLockedValue { $0.sent } }

    /// How the transport was closed, if it was.
    public var closeReason: CloseReason? { state.withLockedValue { $0.closed } }

    /// Waits (polling, at most `timeout`) until `condition` holds for what was sent and the close
    /// reason; returns whether it did.
    public func wait(timeout: Duration = .seconds(5), until condition: @escaping @Sendable ([String], CloseReason?) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if state.withLockedValue({ condition($0.sent, $0.closed) }) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return state.withLockedValue { condition($0.sent, $0.closed) }
    }

    public func send(_ frame: EncodedFrame) {
        let text = frame.isBinary ? "<binary \(frame.bytes.readableBytes) bytes>" : String(buffer: frame.bytes)
        state.withLockedValue { if $0.closed == nil { $0.sent.append(text) } }
    }

    public func sendPreEncoded(_ frame: ByteBuffer) {
        state.withLockedValue { if $0.closed == nil { $0.sent.append(String(buffer: frame)) } }
    }

    public func flush() {}

    public func close(_ reason: CloseReason) {
        let session = state.withLockedValue { s -> (any Session)? in
            guard s.closed == nil else { return nil }
            s.closed = reason
            defer { s.session = nil }
            return s.session
        }
        session?.transportClosed()
    }
}
