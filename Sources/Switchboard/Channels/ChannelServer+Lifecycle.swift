extension ChannelServer {
    /// The rules of one channel's life, as a value: `ChannelServer` keeps one behind its lock, calls
    /// it for every event, and does what it returns. Tested without sockets or tasks.
    ///
    /// | event | joining | joined | closed |
    /// | --- | --- | --- | --- |
    /// | `push` | held until the join reply is out | sent | dropped |
    /// | presence snapshot | held until subscribed, sent before the held pushes | sent | dropped |
    /// | join succeeded | → joined; subscribe, send the held pushes | — | nothing (ended while joining: not subscribed) |
    /// | intercepted broadcast | `handleOut` in the mailbox | `handleOut` in the mailbox | `handleOut` (answered as ended) |
    /// | other broadcast, intercepts pending | behind them in the mailbox | behind them in the mailbox | behind them |
    /// | other broadcast, none pending | written at once | written at once | written at once (unsubscribed first) |
    /// | end | → closed, no `terminate` | → closed, `terminate` runs | — |
    struct Lifecycle {
        enum Phase: Equatable, Sendable {
            case joining
            case joined
            case closed
        }

        private(set) var phase = Phase.joining
        /// Pushes made while joining: they go out right after the join reply.
        private var heldPushes: [(event: String, payload: Payload)] = []
        /// Whether the presence snapshot was asked for while joining (it follows the join reply).
        private var presenceStateHeld = false
        /// Intercepted broadcasts, and fast-lane frames queued behind them, not yet sent: while
        /// there are any, a fast-lane frame queues too, so the client sees broadcasts in order.
        private(set) var pendingOutbound = 0

        var isClosed: Bool { phase == .closed }

        enum PushAction: Equatable {
            /// Held until the join reply is out.
            case held
            case send
            /// The channel ended: nothing more is sent.
            case drop
        }

        mutating func push(event: String, payload: Payload) -> PushAction {
            switch phase {
            case .joining:
                heldPushes.append((event, payload))
                return .held
            case .joined:
                return .send
            case .closed:
                return .drop
            }
        }

        /// The presence snapshot (`presence_state`) was asked for: while joining it is held and
        /// sent right after the join reply, once the channel has subscribed (so that no diff
        /// can fall between the snapshot and the diffs that follow it).
        mutating func presenceState() -> PushAction {
            switch phase {
            case .joining:
                presenceStateHeld = true
                return .held
            case .joined:
                return .send
            case .closed:
                return .drop
            }
        }

        enum JoinedAction {
            /// Subscribe to the topic, then send the presence snapshot if it was asked for, then
            /// these held pushes (all after the join reply).
            case subscribe(pushes: [(event: String, payload: Payload)], presenceState: Bool)
            /// The channel ended while its join ran: it must not subscribe.
            case ended
        }

        /// The join callback accepted (called once the reply is written).
        mutating func joinSucceeded() -> JoinedAction {
            guard phase == .joining else { return .ended }
            phase = .joined
            defer {
                heldPushes = []
                presenceStateHeld = false
            }
            return .subscribe(pushes: heldPushes, presenceState: presenceStateHeld)
        }

        /// Ends the channel; returns whether it had joined (then its `terminate` runs).
        mutating func end() -> Bool {
            defer {
                phase = .closed
                heldPushes = []
            }
            return phase == .joined
        }

        enum BroadcastAction: Equatable {
            /// Into the mailbox for the channel's `handleOut`.
            case handleOut
            /// Into the mailbox behind the intercepted broadcasts still pending.
            case queueBehind
            /// Written to the connection at once.
            case write
        }

        /// A broadcast arrived for a channel that intercepts some events (one that intercepts none
        /// writes every frame at once, without asking).
        mutating func broadcastArrived(intercepted: Bool) -> BroadcastAction {
            if intercepted {
                pendingOutbound += 1
                return .handleOut
            }
            guard pendingOutbound > 0 else { return .write }
            pendingOutbound += 1
            return .queueBehind
        }

        /// An intercepted broadcast (or a frame queued behind one) was handled and its push written.
        mutating func outboundSent() {
            pendingOutbound -= 1
        }
    }
}
