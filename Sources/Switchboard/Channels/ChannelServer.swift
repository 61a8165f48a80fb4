import NIOCore
import Synchronization

/// The framework side of one joined (connection, topic) pair.
///
/// It owns a mailbox: inbound events, intercepted broadcasts and lifecycle requests are queued
/// and run one at a time, in order, by a task that exists only while there is work (an idle
/// channel costs no task). Fast-lane broadcasts bypass the mailbox: `receive` writes the shared
/// pre-encoded frame straight to the connection on its event loop.
final class ChannelServer: Subscriber, @unchecked Sendable {
    // @unchecked: `socket` and `predecessor` are touched only by mailbox work,
    // which `SerialMailbox` runs one item at a time (its lock hands each item over with a
    // happens-before edge); `answersOwed` and `endWhenAnswered` only on the event loop;
    // everything else is immutable or behind `state`.

    enum Work: Sendable {
        case join(Message)
        case handleIn(Message)
        case handleOut(Broadcast)
        /// A fast-lane frame queued behind intercepted broadcasts, to keep their order.
        case preEncoded(ByteBuffer)
        case roomMessage(Broadcast)
        case leave(Message)
        case terminate(TerminateReason, sendClose: Bool)

        /// A client message, which the client expects answered in order.
        var isClientMessage: Bool {
            switch self {
            case .handleIn, .leave: return true
            default: return false
            }
        }
    }

    struct State {
        var lifecycle = Lifecycle()
        var rooms: [String: RoomSubscriber] = [:]
        /// The presence keys this channel tracks in its topic (one, as a rule: an array is
        /// smaller than a set).
        var presenceKeys: [String] = []
        /// Whether this join instance's client was sent (or will be sent) the presence snapshot.
        var presenceStateRequested = false
    }

    let id: SubscriberID
    let topic: String
    /// The join_ref as the client sent it (for the stale-frame check).
    let joinRef: JSONValue
    /// The join_ref stamped on replies and pushes: the join's join_ref, else its ref.
    let stampRef: JSONValue
    let channel: any TopicChannel
    let intercepts: Set<String>
    let session: PhoenixSession
    let state = Mutex(State())
    let mailbox = SerialMailbox()
    /// Completed once the channel has terminated (its successor on the same topic waits for it).
    let terminated: EventLoopPromise<Void>
    /// The previous instance of this topic on the connection, until it has terminated (then
    /// released, so repeated rejoins do not chain instances together).
    private var predecessor: ChannelServer?
    /// In a topic with history: the offset the join reply gave; live broadcasts up to it are
    /// dropped (they were replayed, or precede the join). Event loop only.
    private var replayedThrough: UInt64?
    /// Holds a reference back to this server, so it is released when the channel ends (a
    /// server that kept it would never be freed).
    private var socket: ChannelSocket!

    /// Channel servers alive in this process (leak checks, metrics).
    static let live = Atomic<Int>(0)

    var eventLoop: any EventLoop { session.eventLoop }
    let frameFormat: FrameFormat?
    var connection: Connection { session.connection }

    init(session: PhoenixSession, join: Message, channel: any TopicChannel, predecessor: ChannelServer?) {
        self.id = SubscriberID.next(node: session.hub.nodeID)
        self.session = session
        self.topic = join.topic
        self.joinRef = join.joinRef
        self.stampRef = join.joinRef.isNull ? join.ref : join.joinRef
        self.channel = channel
        self.intercepts = channel.intercepts
        self.predecessor = predecessor
        self.terminated = session.eventLoop.makePromise()
        self.frameFormat = session.transport.broadcastFormat
        self.socket = ChannelSocket(
            topic: topic,
            joinRef: joinRef,
            assigns: session.connection.assigns,
            connection: session.connection,
            hub: session.hub,
            server: self
        )
        Self.live.add(1, ordering: .relaxed)
    }

    deinit {
        Self.live.subtract(1, ordering: .relaxed)
    }

    var isClosed: Bool { state.withLock { $0.lifecycle.isClosed } }

    // MARK: Mailbox

    /// Queues work for the channel; returns how many items wait (0 when the channel has ended).
    /// Called on the event loop.
    @discardableResult
    func enqueue(_ work: Work) -> Int {
        session.eventLoop.assertInEventLoop()
        let answered = work.isClientMessage
        if answered { answersOwed += 1 }
        guard !isClosed else {
            // The channel ended but the session has not forgotten it yet: answer as if the topic
            // were not joined rather than dropping the message — through the mailbox, behind the
            // work still queued there (whose answers must go out first).
            mailbox.enqueue {
                self.answerAfterEnd(work)
                if answered { self.answerSent() }
            }
            return 0
        }
        return mailbox.enqueue {
            if self.isClosed {
                self.answerAfterEnd(work)
            } else {
                await self.perform(work)
            }
            if answered { self.answerSent() }
        }
    }

    // Loop-confined: client messages queued here whose answer has not been written yet. The
    // session forgets an ended channel only once they are all out, so that an answer it then
    // writes itself (to a message for a topic no longer joined) cannot overtake them.
    private var answersOwed: Int32 = 0
    private var endWhenAnswered: Bool?

    /// Counts one answer out, on the loop behind the answer's own write (queued there before).
    private func answerSent() {
        session.eventLoop.execute {
            self.answersOwed -= 1
            if self.answersOwed == 0, let crashed = self.endWhenAnswered {
                self.endWhenAnswered = nil
                self.session.channelEnded(self, crashed: crashed)
            }
        }
    }

    /// Whether the session must wait before forgetting this ended channel (answers are still
    /// owed); if so it is told again once they are written. Called on the loop.
    func holdEnd(crashed: Bool) -> Bool {
        guard answersOwed > 0 else { return false }
        endWhenAnswered = crashed
        return true
    }

    /// Work that arrives after the channel's end (pipelined behind a join that was then refused,
    /// or sent just before the session forgot the ended channel) is answered as if the topic were
    /// not joined, as the client expects: `unmatched topic`, or ok for a leave.
    ///
    /// The answer always goes through the loop's task queue: the channel's last frame (a refused
    /// join's reply, sent from the mailbox task) was queued there before the channel was marked
    /// closed, so the answer cannot overtake it.
    private func answerAfterEnd(_ work: Work) {
        switch work {
        case .handleIn(let message):
            session.sendQueued(
                session.outbound.encodeReply(
                    joinRef: .null,
                    ref: message.ref,
                    topic: topic,
                    status: "error",
                    response: .json(["reason": "unmatched topic"])
                )
            )
        case .leave(let message):
            session.sendQueued(
                session.outbound.encodeReply(joinRef: message.joinRef, ref: message.ref, topic: topic, status: "ok", response: .json(.emptyObject))
            )
        default:
            break
        }
    }

    private func perform(_ work: Work) async {
        switch work {
        case .join(let message): await performJoin(message)
        case .handleIn(let message): await performHandleIn(message)
        case .handleOut(let broadcast):
            await performHandleOut(broadcast)
            // Counted down on the loop, after the push it may have made is written there (the
            // loop runs what this task hands it in order), so a later fast-lane frame cannot pass it.
            session.eventLoop.execute { self.state.withLock { $0.lifecycle.outboundSent() } }
        case .preEncoded(let frame):
            session.eventLoop.execute {
                self.session.transport.sendPreEncoded(frame)
                self.session.transport.flush()
                self.state.withLock { $0.lifecycle.outboundSent() }
            }
        case .roomMessage(let broadcast):
            push(event: broadcast.event, payload: broadcast.payload)
        case .leave(let message):
            session.send(session.outbound.encodeReply(joinRef: stampRef, ref: message.ref, topic: topic, status: "ok", response: .json(.emptyObject)))
            await finish(.left, sendClose: true)
        case .terminate(let reason, let sendClose):
            await finish(reason, sendClose: sendClose)
        }
    }

    private func performJoin(_ message: Message) async {
        if let predecessor {
            // Wait for the old instance to end, but not forever: like Phoenix, a successor goes
            // ahead after `terminateTimeout` even if the old channel's terminate hangs.
            let loop = session.eventLoop
            let timeout = session.socket.configuration.terminateTimeout
            _ = try? await loop.flatSubmit {
                let done = loop.makePromise(of: Void.self)
                let completed = NIOLoopBoundBox(false, eventLoop: loop)
                let finish = {
                    guard !completed.value else { return }
                    completed.value = true
                    done.succeed()
                }
                let timer = loop.scheduleTask(in: timeout) {
                    self.session.logger.debug("previous channel instance did not terminate in time", metadata: ["switchboard.topic": "\(self.topic)"])
                    finish()
                }
                predecessor.terminated.futureResult.whenComplete { _ in
                    timer.cancel()
                    finish()
                }
                return done.futureResult
            }.get()
            self.predecessor = nil
        }
        let result: JoinResult
        do {
            result = try await channel.join(topic: topic, payload: message.payload.json ?? .null, socket: &socket)
        } catch {
            session.logger.debug("join crashed", metadata: ["switchboard.topic": "\(topic)", "error": "\(error)"])
            reply(to: message, status: "error", response: .json(["reason": "join crashed"]), stamp: message.joinRef)
            tellJoined("join crashed")
            closeWithoutTerminate()
            return
        }
        switch result {
        case .ok(var response):
            SwitchboardMetrics.joined(true)
            // The join reply must be the first frame of this join instance: send it, then
            // subscribe and release pushes made during join, all in one event-loop turn. The
            // mailbox waits for that turn, so a later leave/stop/close always finds the channel
            // joined and subscribed (and runs `terminate`). In a topic with history, the
            // subscription comes first and the reply carries the stream's position read after it,
            // so what the replay misses arrives live and what arrives live twice is dropped.
            _ = try? await session.eventLoop.submit {
                let action = self.state.withLock { $0.lifecycle.joinSucceeded() }
                var replay: [StoredMessage] = []
                var current: StreamPosition?
                if case .subscribe = action, self.session.hub.history.isEnabled(for: self.topic) {
                    self.session.hub.subscribe(self, to: self.topic)
                    (response, replay, current) = self.historyResponse(response, joinPayload: message.payload.json)
                }
                if let reply = self.session.outbound.encodeReply(
                    joinRef: message.joinRef,
                    ref: message.ref,
                    topic: self.topic,
                    status: "ok",
                    response: .json(response)
                ) {
                    SwitchboardMetrics.messageSent()
                    self.session.transport.send(reply)
                }
                guard case .subscribe(let pushes, let presenceState) = action else { return }
                if let current {
                    self.replay(replay, epoch: current.epoch)
                    self.replayedThrough = current.offset
                } else {
                    self.session.hub.subscribe(self, to: self.topic)
                }
                if presenceState { self.writePresenceState() }
                for (event, payload) in pushes {
                    if let frame = self.session.outbound.encodePush(joinRef: self.stampRef, topic: self.topic, event: event, payload: payload) {
                        SwitchboardMetrics.messageSent()
                        self.session.transport.send(frame)
                    }
                }
                self.session.transport.flush()
                self.session.joinEnded(self, refusal: nil)
            }.get()
        case .error(let response):
            SwitchboardMetrics.joined(false)
            reply(to: message, status: "error", response: .json(response), stamp: message.joinRef)
            tellJoined(response["reason"]?.stringValue ?? "join refused")
            closeWithoutTerminate()
        }
    }

    /// Tells the session a refused join's outcome on the loop, behind its reply (already queued there).
    private func tellJoined(_ reason: String) {
        session.eventLoop.execute { self.session.joinEnded(self, refusal: reason) }
    }

    private func performHandleIn(_ message: Message) async {
        let result: HandleInResult
        do {
            result = try await channel.handleIn(event: message.event, payload: message.payload, socket: &socket)
        } catch {
            session.logger.debug("channel crashed", metadata: ["switchboard.topic": "\(topic)", "error": "\(error)"])
            await finish(.crashed(String(describing: error)), sendClose: true)
            return
        }
        switch result {
        case .reply(let status, let response):
            reply(to: message, status: status, response: response, stamp: stampRef)
        case .noReply:
            break
        case .stop(let finalReply):
            if let finalReply {
                reply(to: message, status: finalReply.status, response: finalReply.response, stamp: stampRef)
            }
            await finish(.stopped, sendClose: true)
        }
    }

    private func performHandleOut(_ broadcast: Broadcast) async {
        do {
            switch try await channel.handleOut(event: broadcast.event, payload: broadcast.payload, socket: &socket) {
            case .push(let payload): push(event: broadcast.event, payload: payload)
            case .skip: break
            }
        } catch {
            await finish(.crashed(String(describing: error)), sendClose: true)
        }
    }

    private func reply(to message: Message, status: String, response: Payload, stamp: JSONValue) {
        let frame = session.outbound.encodeReply(joinRef: stamp, ref: message.ref, topic: topic, status: status, response: response)
        if frame == nil { session.logger.debug("reply not encodable for this client", metadata: ["switchboard.topic": "\(topic)"]) }
        session.send(frame)
    }

    /// Ends a join that never succeeded: nothing to terminate, nothing more to send.
    ///
    /// The session forgets the channel only after the work already queued behind the join (events
    /// and a leave pipelined behind it) has been answered: until then, later messages for the topic
    /// still come here and queue behind those answers instead of overtaking them.
    private func closeWithoutTerminate() {
        leaveAllRooms()
        _ = state.withLock { $0.lifecycle.end() }
        untrackAll()
        socket = nil
        mailbox.enqueue { self.session.channelEnded(self) }
        terminated.succeed()
    }

    /// Terminates the channel: leaves the topic and its rooms, runs the user's `terminate`, and
    /// tells the client (`phx_close` for a normal end, `phx_error` for a crash) when asked to.
    private func finish(_ reason: TerminateReason, sendClose: Bool) async {
        let wasJoined = state.withLock { $0.lifecycle.end() }
        session.hub.unsubscribe(self, from: topic)
        leaveAllRooms()
        untrackAll()
        if wasJoined {
            await channel.terminate(reason: reason, socket: socket)
        }
        socket = nil
        let crashed: Bool
        if case .crashed = reason { crashed = true } else { crashed = false }
        if sendClose {
            session.send(session.outbound.encodeChannelEnd(joinRef: stampRef, topic: topic, crashed: crashed))
        }
        session.channelEnded(self, crashed: crashed)
        terminated.succeed()
    }

    // MARK: Sending

    func push(event: String, payload: Payload) {
        guard state.withLock({ $0.lifecycle.push(event: event, payload: payload) }) == .send else { return }
        session.send(session.outbound.encodePush(joinRef: stampRef, topic: topic, event: event, payload: payload))
    }

    // MARK: Subscriber

    /// The join response of a topic with history: `position` (the stream's newest), and with a
    /// `recover` position in the join payload, `recovered` and the messages to replay. A response
    /// that is not a JSON object is left as it is (and nothing is replayed).
    private func historyResponse(
        _ response: JSONValue,
        joinPayload: JSONValue?
    ) -> (JSONValue, [StoredMessage], StreamPosition?) {
        guard case .object(var object) = response else { return (response, [], nil) }
        let history = session.hub.history
        var replay: [StoredMessage] = []
        var current: StreamPosition?
        if let recover = joinPayload?["recover"] {
            if let since = StreamPosition(json: recover), case .recovered(let messages, let position)? = history.recover(topic: topic, since: since) {
                replay = messages
                current = position
                object["recovered"] = true
            } else {
                object["recovered"] = false
            }
        }
        guard let position = current ?? history.position(of: topic) else { return (response, [], nil) }
        object["position"] = position.json
        return (.object(object), replay, position)
    }

    /// Sends the replayed messages as the live ones would have been (intercepts included).
    private func replay(_ messages: [StoredMessage], epoch: String) {
        for message in messages {
            let broadcast = message.broadcast(topic: topic, epoch: epoch)
            receive(broadcast, frame: frameFormat.flatMap { $0.encode(broadcast) })
        }
    }

    func receive(_ broadcast: Broadcast, frame: ByteBuffer?) {
        // Already in the join's replay, or older than the position its reply gave.
        if let through = replayedThrough, let position = broadcast.streamPosition, position.offset <= through { return }
        // Channels without intercepts (most) never take the lock here: the frame goes straight out.
        guard !intercepts.isEmpty else {
            if let frame { session.transport.sendPreEncoded(frame) }
            return
        }
        let intercepted = intercepts.contains(broadcast.event)
        guard intercepted || frame != nil else { return }
        switch state.withLock({ $0.lifecycle.broadcastArrived(intercepted: intercepted) }) {
        case .handleOut:
            closeIfOverloaded(enqueue(.handleOut(broadcast)))
        case .queueBehind:
            closeIfOverloaded(enqueue(.preEncoded(frame!)))
        case .write:
            session.transport.sendPreEncoded(frame!)
        }
    }

    func flushBatch() {
        session.transport.flush()
    }

    /// Called on the event loop with the mailbox depth after queueing a broadcast for this channel:
    /// a channel whose handleOut (or room traffic) cannot keep up is a slow consumer.
    func closeIfOverloaded(_ depth: Int) {
        if depth > session.socket.configuration.maxPendingMessages {
            SwitchboardMetrics.slowConsumerClosed()
            session.logger.debug("closing: channel mailbox over its limit", metadata: ["switchboard.topic": "\(topic)"])
            session.transport.close(.slowConsumer)
        }
    }

    // MARK: Rooms

    /// Room membership lives under the state lock: `ChannelSocket` is Sendable, so channel code
    /// may call these from any task, also after the channel ended (then nothing happens).
    func joinRoom(_ room: String) {
        state.withLock { s in
            guard !s.lifecycle.isClosed, s.rooms[room] == nil else { return }
            let subscriber = RoomSubscriber(server: self)
            s.rooms[room] = subscriber
            session.hub.subscribe(subscriber, to: room)
        }
    }

    func leaveRoom(_ room: String) {
        state.withLock { s in
            guard let subscriber = s.rooms.removeValue(forKey: room) else { return }
            session.hub.unsubscribe(subscriber, from: room)
        }
    }

    private func leaveAllRooms() {
        state.withLock { s in
            for (room, subscriber) in s.rooms { session.hub.unsubscribe(subscriber, from: room) }
            s.rooms = [:]
        }
    }

    var roomNames: Set<String> { state.withLock { Set($0.rooms.keys) } }

    // MARK: Presence

    /// Like rooms, presence calls may come from any task; after the channel ended they throw
    /// `channelEnded`. The channel's lock is held while the tracker records a track, so a track
    /// can never slip in after the channel's end has untracked everything.
    func track(key: String, meta: JSONValue) throws(PresenceError) {
        let presence = session.hub.presence
        let appMeta = try presence.appMeta(meta)
        let sendState = try state.withLock { s throws(PresenceError) -> Bool in
            guard !s.lifecycle.isClosed else { throw .channelEnded }
            guard !s.presenceKeys.contains(key) else { throw .alreadyTracked }
            s.presenceKeys.append(key)
            presence.track(topic: topic, key: key, owner: id, meta: appMeta, loop: eventLoop)
            // A channel that tracks gets the snapshot, once per join instance.
            guard !s.presenceStateRequested else { return false }
            s.presenceStateRequested = true
            return s.lifecycle.presenceState() == .send
        }
        if sendState { sendPresenceState() }
    }

    func updatePresence(key: String, meta: JSONValue) throws(PresenceError) {
        let presence = session.hub.presence
        let appMeta = try presence.appMeta(meta)
        try state.withLock { s throws(PresenceError) in
            guard !s.lifecycle.isClosed else { throw .channelEnded }
            guard s.presenceKeys.contains(key) else { throw .notTracked }
            presence.update(topic: topic, key: key, owner: id, meta: appMeta, loop: eventLoop)
        }
    }

    /// Untracks one key now (no grace period: the app asked for it). False when not tracked.
    @discardableResult
    func untrack(key: String) -> Bool {
        state.withLock { s in
            guard let index = s.presenceKeys.firstIndex(of: key) else { return false }
            s.presenceKeys.remove(at: index)
            session.hub.presence.untrack(topic: topic, keys: [key], owner: id, loop: eventLoop, grace: false)
            return true
        }
    }

    var trackedKeys: Set<String> { Set(state.withLock { $0.presenceKeys }) }

    /// Sends this client the topic's presence snapshot (after the join reply if still joining).
    func pushPresenceState() {
        let action = state.withLock { s -> Lifecycle.PushAction in
            s.presenceStateRequested = true
            return s.lifecycle.presenceState()
        }
        if action == .send { sendPresenceState() }
    }

    /// The channel ended: its presences go (the last meta of a key after the topic's grace period).
    private func untrackAll() {
        let keys = state.withLock { s -> [String] in
            defer { s.presenceKeys = [] }
            return s.presenceKeys
        }
        guard !keys.isEmpty else { return }
        session.hub.presence.untrack(topic: topic, keys: keys, owner: id, loop: eventLoop, grace: true)
    }

    private func sendPresenceState() {
        eventLoop.execute {
            self.writePresenceState()
            self.session.transport.flush()
        }
    }

    /// Writes the snapshot (or a count-only topic's count), taken now, on the loop: diffs this
    /// subscriber receives after it were taken after it.
    private func writePresenceState() {
        eventLoop.assertInEventLoop()
        guard !isClosed else { return }
        let (event, payload) = session.hub.presence.joinerMessage(topic)
        if let frame = session.outbound.encodePush(joinRef: stampRef, topic: topic, event: event, jsonText: payload) {
            SwitchboardMetrics.messageSent()
            session.transport.send(frame)
        }
    }
}

/// A channel's membership of a room: room broadcasts become pushes on the channel's own topic.
final class RoomSubscriber: Subscriber {
    let id: SubscriberID
    let server: ChannelServer

    init(server: ChannelServer) {
        self.id = server.id
        self.server = server
    }

    var eventLoop: any EventLoop { server.eventLoop }
    var frameFormat: FrameFormat? { nil }
    var connection: Connection { server.connection }

    func receive(_ broadcast: Broadcast, frame: ByteBuffer?) {
        server.closeIfOverloaded(server.enqueue(.roomMessage(broadcast)))
    }

    func flushBatch() {}
}
