import DequeModule
import Logging
import NIOCore
import Switchboard
import SwitchboardRESP
import Synchronization

/// Presence across nodes, replicated over one Redis pub/sub channel (`<keyPrefix>presence`).
///
/// Every node keeps the whole cluster's presence (as Phoenix.Tracker does): its own entries, and
/// a replica of every other node's, so `list`, `count` and the diffs its subscribers receive are
/// the cluster's, answered without a round trip.
/// - A node publishes its own changes as they happen (batched into one `delta` per flush, numbered
///   1, 2, 3…), and a heartbeat every `presenceHeartbeat` carrying its last number.
/// - A receiver that sees a gap in a node's numbers (a lost message, a Redis outage, a node it
///   has not heard before) asks that node for its full state, and replaces what it knew of it.
///   Each change is idempotent (by `phx_ref`), so a change seen twice does no harm.
/// - A node not heard from for `presenceLease` is gone: its entries are removed everywhere (the
///   live node with the smallest id announces the members it leaves behind to the lifecycle
///   listeners).
/// - A node starting, or reconnecting to Redis, asks everyone for their state. A node stopping
///   gracefully says `bye`, and the others drop its entries at once. While a node is itself cut
///   off from Redis, it expires nobody.
///
/// Costs: one `PUBLISH` per flush with changes (not per join), one per heartbeat per node; a
/// replicated entry costs each node its key, ref and meta text.
final class PresenceReplication: Sendable {
    enum Outgoing {
        case updates([PresenceUpdate])
        case state
        case heartbeat
        case sync(target: String)
    }

    struct Remote {
        var expected: UInt64 = 0
        var lastSeen: NIODeadline
        var synced = false
        var syncRequestedAt: NIODeadline?
        var stateParts: [PresenceUpdate] = []
    }

    struct State {
        var presence: Presence?
        var queue = Deque<Outgoing>()
        var seq: UInt64 = 0
        var remotes: [String: Remote] = [:]
        var stateQueued = false
        /// Nodes that said bye (the newest 256).
        var departed: Set<String> = []
        var departedOrder = Deque<String>()
    }

    let state = Mutex(State())
    let wakeUp: AsyncStream<Void>.Continuation
    let wakeUps: AsyncStream<Void>

    init() {
        (wakeUps, wakeUp) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func enqueue(_ item: Outgoing) {
        state.withLock { s in
            if case .state = item {
                guard !s.stateQueued else { return }
                s.stateQueued = true
            }
            if case .updates(let new) = item, case .updates(let old)? = s.queue.last {
                s.queue[s.queue.count - 1] = .updates(old + new)
            } else {
                s.queue.append(item)
            }
        }
        wakeUp.yield()
    }
}

extension RedisBroker {
    /// The Redis channel presence travels on.
    public var presenceChannel: String { configuration.keyPrefix + "presence" }

    /// Replicates `hub`'s presence to the other nodes and theirs to it (call once, right after
    /// creating the hub, before any channel tracks).
    public func replicatePresence(of hub: Hub) {
        let presence = hub.presence
        presenceReplication.state.withLock { $0.presence = presence }
        presence.replicate { [weak self] update in
            self?.presenceReplication.enqueue(.updates([update]))
        }
        _ = client.subscribe(channel: presenceChannel) { [weak self] message in
            self?.receivedPresence(message)
        }
        presenceReplication.enqueue(.sync(target: "*"))
    }

    // MARK: Sending

    /// Sends queued presence messages, in order, and keeps the heartbeat and the leases.
    func presenceLoop() async {
        guard presenceReplication.state.withLock({ $0.presence != nil }) else { return }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.presenceFlushLoop() }
            group.addTask { await self.presenceHeartbeatLoop() }
        }
    }

    private func presenceFlushLoop() async {
        for await _ in presenceReplication.wakeUps {
            if Task.isCancelled { return }
            // Let the changes of a burst share one message.
            try? await Task.sleep(for: configuration.presenceFlushWindow)
            let (items, presence) = presenceReplication.state.withLock { s in
                defer { s.queue.removeAll() }
                return (Array(s.queue), s.presence)
            }
            guard let presence else { continue }
            let commands = items.flatMap { publishes(of: messages(for: $0, presence: presence)) }
            guard !commands.isEmpty else { continue }
            for case .failure(let error) in await client.send(commands) {
                // The others will see the gap in our numbers and ask for our state.
                logger.debug("a presence message did not reach Redis", metadata: ["error": "\(error)"])
                break
            }
        }
    }

    private func publishes(of messages: [PresenceWire]) -> [RESPCommand] {
        messages.map { RESPCommand("PUBLISH", arguments: [.string(presenceChannel), .bytes($0.encoded())]) }
    }

    /// Stopping gracefully: sends what is still queued (the leaves of the connections just
    /// closed) and a `bye`, so the other nodes drop this node's entries now, not a lease later.
    /// Waits at most a second.
    func sayGoodbye() async {
        let (items, presence) = presenceReplication.state.withLock { s in
            defer { s.queue.removeAll() }
            return (Array(s.queue), s.presence)
        }
        guard let presence, client.isConnected else { return }
        var commands = items.flatMap { publishes(of: messages(for: $0, presence: presence)) }
        commands += publishes(of: [.bye(node: nodeID, seq: presenceReplication.state.withLock { $0.seq })])
        _ = await client.send(commands, timeout: .seconds(1))
    }

    /// The wire messages for one queued item, numbered as they are sent.
    private func messages(for item: PresenceReplication.Outgoing, presence: Presence) -> [PresenceWire] {
        switch item {
        case .updates(let updates):
            let seq = presenceReplication.state.withLock { s -> UInt64 in
                s.seq += 1
                return s.seq
            }
            return [.delta(node: nodeID, seq: seq, updates: updates)]
        case .heartbeat:
            return [.heartbeat(node: nodeID, seq: presenceReplication.state.withLock { $0.seq })]
        case .sync(let target):
            return [.sync(node: nodeID, target: target)]
        case .state:
            // Taken now: every change numbered up to `seq` is in it (a later one may be too, and
            // arrives again as a delta, which changes nothing).
            let seq = presenceReplication.state.withLock { s -> UInt64 in
                s.stateQueued = false
                return s.seq
            }
            let updates = presence.localState().map { PresenceUpdate(node: nodeID, topic: $0.key, operations: $0.value) }
            var parts: [[PresenceUpdate]] = [[]]
            var size = 0
            for update in updates {
                for chunk in stride(from: 0, to: update.operations.count, by: 1000) {
                    let operations = Array(update.operations[chunk..<min(chunk + 1000, update.operations.count)])
                    size += operations.count
                    if size > 1000 {
                        parts.append([])
                        size = operations.count
                    }
                    parts[parts.count - 1].append(PresenceUpdate(node: nodeID, topic: update.topic, operations: operations))
                }
            }
            return parts.enumerated().map { index, part in
                .state(node: nodeID, seq: seq, part: index, last: index == parts.count - 1, updates: part)
            }
        }
    }

    private func presenceHeartbeatLoop() async {
        var connections = client.statistics.connections
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.presenceHeartbeat)
            } catch {
                return
            }
            // A new connection to Redis: what was published meanwhile is lost; ask everyone. The
            // others reconnect in their own time (their backoff): each gets a whole lease from now
            // to be heard again before it counts as gone.
            let now = client.statistics.connections
            if now != connections {
                connections = now
                let restart = NIODeadline.now()
                presenceReplication.state.withLock { s in
                    for node in s.remotes.keys { s.remotes[node]?.lastSeen = restart }
                }
                presenceReplication.enqueue(.sync(target: "*"))
            }
            presenceReplication.enqueue(.heartbeat)
            expireLeases()
        }
    }

    /// Removes the nodes not heard from for `presenceLease`.
    func expireLeases() {
        let now = NIODeadline.now()
        let lease = TimeAmount(configuration.presenceLease)
        let connected = client.isConnected
        let (expired, live, presence) = presenceReplication.state.withLock { s -> ([String], [String], Presence?) in
            // Cut off from Redis ourselves, we cannot tell who is alive: the others' entries stay
            // (no leave-and-join flapping for every client), and their leases restart when we
            // are back (the syncs of the reconnect then correct what changed meanwhile).
            guard connected else {
                for node in s.remotes.keys { s.remotes[node]?.lastSeen = now }
                return ([], [], s.presence)
            }
            let expired = s.remotes.filter { now - $0.value.lastSeen > lease }.map(\.key)
            for node in expired { s.remotes[node] = nil }
            return (expired, Array(s.remotes.keys) + [nodeID], s.presence)
        }
        guard let presence, !expired.isEmpty else { return }
        for node in expired {
            logger.info("presence: node silent for the lease, its members removed", metadata: ["switchboard.node": "\(node)"])
            remove(node, live: live, from: presence)
        }
    }

    /// Drops a node's entries; the live node with the smallest id tells the lifecycle listeners
    /// about the members it leaves behind (once in the cluster).
    private func remove(_ node: String, live: [String], from presence: Presence) {
        presence.removeNode(node, announcing: live.min() == nodeID, loop: client.eventLoop)
    }

    // MARK: Receiving

    /// On the client's loop, in Redis order.
    func receivedPresence(_ message: RESPPubSubMessage) {
        let wire: PresenceWire
        do {
            wire = try PresenceWire(decoding: message.payload)
        } catch {
            counters.malformed.add(1, ordering: .relaxed)
            return
        }
        guard wire.node != nodeID else { return }
        let now = NIODeadline.now()
        let loop = client.eventLoop
        var sync: String?
        var apply: (Presence) -> Void = { _ in }
        let presence = presenceReplication.state.withLock { s -> Presence? in
            // A stopped node's late messages (sent before its bye) change nothing, until a node of
            // that id starts again (its first words are a sync).
            if s.departed.contains(wire.node) {
                guard case .sync = wire else { return nil }
                s.departed.remove(wire.node)
            }
            if case .bye = wire {
                s.remotes[wire.node] = nil
                s.departed.insert(wire.node)
                s.departedOrder.append(wire.node)
                if s.departedOrder.count > 256, let oldest = s.departedOrder.popFirst() { s.departed.remove(oldest) }
                let live = Array(s.remotes.keys) + [nodeID]
                apply = { [self] presence in self.remove(wire.node, live: live, from: presence) }
                return s.presence
            }
            var remote = s.remotes[wire.node] ?? PresenceReplication.Remote(lastSeen: now)
            remote.lastSeen = now
            func needSync() {
                // One request at a time per node (again after 5 s without an answer).
                if let asked = remote.syncRequestedAt, now - asked < .seconds(5) { return }
                remote.syncRequestedAt = now
                sync = wire.node
            }
            switch wire {
            case .delta(_, let seq, let updates):
                if !remote.synced || seq != remote.expected + 1 { needSync() }
                remote.expected = max(remote.expected, seq)
                apply = { presence in for update in updates { presence.apply(update, loop: loop) } }
            case .heartbeat(_, let seq):
                if !remote.synced || seq != remote.expected { needSync() }
            case .sync, .bye:
                break  // answered below, outside the lock (bye: above)
            case .state(let node, let seq, let part, let last, let updates):
                if part == 0 { remote.stateParts = [] }
                remote.stateParts += updates
                if last {
                    let parts = remote.stateParts
                    remote.stateParts = []
                    remote.synced = true
                    remote.syncRequestedAt = nil
                    remote.expected = seq
                    apply = { presence in
                        var topics: [String: [PresenceOperation]] = [:]
                        for update in parts { topics[update.topic, default: []] += update.operations }
                        presence.replaceNode(node, with: topics, loop: loop)
                    }
                }
            }
            s.remotes[wire.node] = remote
            return s.presence
        }
        guard let presence else { return }
        if case .sync(_, let target) = wire, target == "*" || target == nodeID {
            presenceReplication.enqueue(.state)
        }
        apply(presence)
        if let sync { presenceReplication.enqueue(.sync(target: sync)) }
    }
}
