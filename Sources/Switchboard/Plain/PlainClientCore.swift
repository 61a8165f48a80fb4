import Logging
import NIOCore
import Synchronization

/// The non-generic part of a plain client: its transport, subscriptions and mailbox.
final class PlainClientCore: Session, @unchecked Sendable {
    // @unchecked: the callback closures are set once, before the connection starts, read after,
    // and cleared by the last mailbox item once the connection is closed (no receive can follow);
    // subscriptions are behind a lock; the rest is immutable or Sendable.
    let id: SubscriberID
    let hub: Hub
    let transport: any Transport
    let connection: Connection
    let format: FrameFormat
    let mailbox = SerialMailbox()
    let logger: Logger
    private struct Subscriptions {
        var byTopic: [String: PlainSubscriber] = [:]
        var closed = false
    }
    private let subscriptions = Mutex(Subscriptions())
    /// Set once by the generic client factory: the handler callbacks, type-erased.
    var onStart: (@Sendable () async -> Void)?
    var onMessage: (@Sendable (PlainMessage) async -> Void)?
    var onClose: (@Sendable () async -> Void)?

    let maxPendingMessages: Int

    init(hub: Hub, transport: any Transport, connection: Connection, format: FrameFormat, maxPendingMessages: Int, logger: Logger) {
        self.maxPendingMessages = maxPendingMessages
        self.id = SubscriberID.next(node: hub.nodeID)
        self.hub = hub
        self.transport = transport
        self.connection = connection
        self.format = format
        self.logger = logger
        Self.live.add(1, ordering: .relaxed)
    }

    deinit {
        Self.live.subtract(1, ordering: .relaxed)
    }

    /// Plain clients alive in this process (leak checks, metrics).
    static let live = Atomic<Int>(0)

    var eventLoop: any EventLoop { transport.eventLoop }

    /// How this client's own messages are written for its transport.
    var serializer: PlainSerializer { PlainSerializer.for(transport) }

    func send(text: ByteBuffer) {
        if let frame = serializer.encode(text: text) { send(frame) }
    }

    func send(binary: ByteBuffer) {
        if let frame = serializer.encode(binary: binary) { send(frame) }
    }

    private func send(_ frame: EncodedFrame) {
        SwitchboardMetrics.messageSent()
        if eventLoop.inEventLoop {
            transport.send(frame)
            transport.flush()
        } else {
            eventLoop.execute {
                self.transport.send(frame)
                self.transport.flush()
            }
        }
    }

    /// Subscribes at once (from any thread), so a broadcast made right after reaches this client.
    func subscribe(to topic: String) {
        subscriptions.withLock { s in
            guard !s.closed, s.byTopic[topic] == nil else { return }
            let subscriber = PlainSubscriber(core: self)
            s.byTopic[topic] = subscriber
            hub.subscribe(subscriber, to: topic)
        }
    }

    /// On the event loop: subscribe, read what was missed, write it, and drop live messages up
    /// to the position read (they were replayed or precede it); live deliveries hop to the loop,
    /// so they come after.
    func subscribe(to topic: String, since: StreamPosition) async -> Recovery? {
        guard hub.history.isEnabled(for: topic) else {
            subscribe(to: topic)
            return nil
        }
        return try? await eventLoop.submit { () -> Recovery? in
            let subscriber = self.subscriptions.withLock { s -> PlainSubscriber? in
                guard !s.closed, s.byTopic[topic] == nil else { return nil }
                let subscriber = PlainSubscriber(core: self)
                s.byTopic[topic] = subscriber
                self.hub.subscribe(subscriber, to: topic)
                return subscriber
            }
            guard let subscriber, let recovery = self.hub.history.recover(topic: topic, since: since) else { return nil }
            switch recovery {
            case .recovered(let messages, let current):
                for message in messages {
                    let broadcast = message.broadcast(topic: topic, epoch: current.epoch)
                    subscriber.receive(broadcast, frame: self.format.encode(broadcast))
                }
                subscriber.replayedThrough = current.offset
            case .notRecovered(let current):
                subscriber.replayedThrough = current.offset
            }
            self.transport.flush()
            return recovery
        }.get()
    }

    func unsubscribe(from topic: String) {
        subscriptions.withLock { s in
            guard let subscriber = s.byTopic.removeValue(forKey: topic) else { return }
            hub.unsubscribe(subscriber, from: topic)
        }
    }

    // MARK: Session

    func start() {
        if let onStart { mailbox.enqueue(onStart) }
    }

    func receive(text: ByteBuffer) -> CloseReason? {
        deliver(PlainMessage(data: text, isBinary: false))
    }

    func receive(binary: ByteBuffer) -> CloseReason? {
        deliver(PlainMessage(data: binary, isBinary: true))
    }

    private func deliver(_ message: PlainMessage) -> CloseReason? {
        SwitchboardMetrics.messageReceived()
        guard let onMessage else { return nil }
        let depth = mailbox.enqueue { await onMessage(message) }
        return depth > maxPendingMessages ? CloseReason(code: 1008, reason: "too many pending messages") : nil
    }

    func transportClosed() {
        let wasOpen = subscriptions.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.closed = true
            for (topic, subscriber) in s.byTopic { hub.unsubscribe(subscriber, from: topic) }
            s.byTopic = [:]
            return true
        }
        guard wasOpen else { return }
        mailbox.enqueue {
            await self.onClose?()
            // The callbacks hold the client, which holds this core: release them to end the cycle.
            self.onStart = nil
            self.onMessage = nil
            self.onClose = nil
        }
    }
}
