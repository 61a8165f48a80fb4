import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Switchboard

/// Channel code under test without a network, after Phoenix's `ChannelTest`: one client session
/// over a `MemoryTransport` (Phoenix V2 frames), driven by `join`, `push` and the `expect…` calls.
///
/// ```swift
/// let client = try ChannelTest(socket: socket)
/// let joined = try await client.join("room:lobby", ["user": "ana"])
/// let ref = try await client.push("room:lobby", "new_msg", ["body": "hi"])
/// let reply = try await client.expectReply(ref)
/// let broadcast = try await client.expectPush("room:lobby", "new_msg")
/// ```
public final class ChannelTest: Sendable {
    /// A reply that came back, or the reason an expectation was not met.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let transport: MemoryTransport
    public let session: PhoenixSession
    private let group: MultiThreadedEventLoopGroup
    private let refs = NIOLockedValueBoxCounter()

    /// A client connected to `socket` (its connect handler is not run: give the connection's
    /// `assigns` and `socketID` as the handler would have).
    public init(socket: PhoenixSocket, assigns: Assigns = Assigns(), socketID: String? = nil) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        transport = MemoryTransport(eventLoop: group.next(), broadcastFormat: Self.phoenixV2Text)
        session = PhoenixSession(
            socket: socket,
            transport: transport,
            serializer: .v2,
            connection: transport.connection(socketID: socketID, assigns: assigns),
            logger: Logger(label: "switchboard.channel-test")
        )
        transport.attach(session)
        let session = self.session
        try session.eventLoop.submit { session.start() }.wait()
    }

    deinit {
        try? group.syncShutdownGracefully()
    }

    /// Sends one client message (as a V2 frame would be read); returns its ref. A join's join_ref
    /// is its own ref, as phoenix.js sends it.
    @discardableResult
    public func send(_ topic: String, _ event: String, _ payload: JSONValue = .emptyObject, joinRef: String? = nil) async throws -> String {
        let ref = String(refs.next())
        let join = event == PhoenixEvent.join ? ref : joinRef
        let message = Message(joinRef: join.map { .string($0) } ?? .null, ref: .string(ref), topic: topic, event: event, payload: .json(payload))
        let session = self.session
        try await session.eventLoop.submit { session.handle(message) }.get()
        return ref
    }

    /// Joins `topic` and returns the join reply's response; throws when the join is refused.
    @discardableResult
    public func join(_ topic: String, _ payload: JSONValue = .emptyObject, timeout: Duration = .seconds(5)) async throws -> JSONValue {
        let ref = try await send(topic, PhoenixEvent.join, payload)
        joinRefs.withLockedValue { $0[topic] = ref }
        let reply = try await expectReply(ref, timeout: timeout)
        guard reply.status == "ok" else { throw Failure(description: "join of \(topic) refused: \(reply.response)") }
        return reply.response
    }

    /// Pushes an event to a joined topic (with its join ref); returns the push's ref.
    @discardableResult
    public func push(_ topic: String, _ event: String, _ payload: JSONValue = .emptyObject) async throws -> String {
        try await send(topic, event, payload, joinRef: joinRefs.withLockedValue { $0[topic] })
    }

    /// Leaves a joined topic and returns the leave's reply status.
    public func leave(_ topic: String, timeout: Duration = .seconds(5)) async throws -> String {
        let ref = try await push(topic, PhoenixEvent.leave)
        return try await expectReply(ref, timeout: timeout).status
    }

    /// Waits for the reply to `ref`.
    public func expectReply(_ ref: String, timeout: Duration = .seconds(5)) async throws -> (status: String, response: JSONValue) {
        let frame = try await expect("a reply to ref \(ref)", timeout: timeout) { $0[3] == .string(PhoenixEvent.reply) && $0[1] == .string(ref) }
        return (frame[4]["status"]?.stringValue ?? "", frame[4]["response"] ?? .null)
    }

    /// Waits for a push or broadcast of `event` on `topic` (not a reply) and returns its payload.
    public func expectPush(_ topic: String, _ event: String, timeout: Duration = .seconds(5)) async throws -> JSONValue {
        let frame = try await expect("\(event) on \(topic)", timeout: timeout) { $0[2] == .string(topic) && $0[3] == .string(event) }
        return frame[4]
    }

    /// Every frame the client received so far, parsed (V2 arrays).
    public var frames: [JSONValue] {
        transport.sent.compactMap { try? JSONParser.parse(ByteBuffer(string: $0)) }
    }

    /// Broadcasts as the V2 JSON text itself (no WebSocket header), as the session's own frames are.
    static let phoenixV2Text = FrameFormat(name: "phoenix-v2-text") { broadcast in
        PhoenixSerializer.v2.encodeBroadcast(broadcast).flatMap {
            $0.isBinary ? nil : $0.bytes
        }
    }

    private let joinRefs = NIOLockedValueBox<[String: String]>([:])
    /// Frames an `expect…` call already returned (by position in `frames`).
    private let taken = NIOLockedValueBox<Set<Int>>([])

    /// The first frame not taken yet that matches; earlier non-matching ones stay for later calls.
    private func expect(_ what: String, timeout: Duration, where matches: @escaping @Sendable ([JSONValue]) -> Bool) async throws -> [JSONValue] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let frames = self.frames.map { $0.arrayValue ?? [] }
            let found = taken.withLockedValue { taken -> [JSONValue]? in
                guard let index = frames.indices.first(where: { !taken.contains($0) && frames[$0].count == 5 && matches(frames[$0]) }) else {
                    return nil
                }
                taken.insert(index)
                return frames[index]
            }
            if let found { return found }
            guard ContinuousClock.now < deadline else {
                throw Failure(description: "expected \(what) within \(timeout); received: \(frames)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// A counter behind a lock (refs for the test client's messages).
final class NIOLockedValueBoxCounter: Sendable {
    private let value = NIOLockedValueBox(0)
    func next() -> Int {
        value.withLockedValue {
            $0 += 1
            return $0
        }
    }
}
