import Switchboard
import Synchronization

/// `online`: how many sessions on this node have joined it, live. Anyone may join; every join and
/// every end (leave, disconnect, crash) sends `session-count` `{"count": n, "seq": s}` to everyone
/// joined, the new member included (its count arrives right after its join reply).
///
/// The count is the hub's local subscriber count of `membersRoom`, a room each `online` channel
/// enters in its join callback and leaves in terminate. A room, rather than the `online` topic
/// itself, because the framework subscribes a channel to its topic only after `join` returns and
/// unsubscribes it around `terminate` (before it today, possibly after it tomorrow): counting a
/// room the callbacks enter and leave themselves is right whatever that order.
///
/// Joins on different connections run concurrently and their broadcasts may be delivered in either
/// order, so each count carries `seq`, taken together with the count under one lock: a client
/// keeps the count with the highest `seq` since its join and the last one it keeps is exact.
struct OnlineChannel: TopicChannel {
    /// The hub room whose local subscriber count is the number of sessions online.
    static let membersRoom = "online:members"

    /// Orders the counts: the count and its sequence number are read together.
    private let sequence = CountSequence()

    final class CountSequence: Sendable {
        let last = Mutex<Int64>(0)
    }

    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
        socket.joinRoom(Self.membersRoom)
        announce(on: socket)
        return .ok()
    }

    func handleIn(event: String, payload: Payload, socket: inout ChannelSocket) async throws -> HandleInResult {
        .error(reason: "read only: the server publishes to \(socket.topic)")
    }

    func terminate(reason: TerminateReason, socket: ChannelSocket) async {
        socket.leaveRoom(Self.membersRoom)  // idempotent: the framework may have taken it out already
        announce(on: socket)
    }

    /// Broadcasts the current count to the room (every member gets it as a push on `online`).
    private func announce(on socket: ChannelSocket) {
        let (count, seq) = sequence.last.withLock { last -> (Int, Int64) in
            last += 1
            return (socket.hub.localSubscriberCount(topic: Self.membersRoom), last)
        }
        socket.hub.broadcast(topic: Self.membersRoom, event: "session-count", payload: ["count": .int(Int64(count)), "seq": .int(seq)])
    }
}
