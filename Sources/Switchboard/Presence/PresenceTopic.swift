import NIOCore
import OrderedCollections

/// One topic's presence, as a value: who is here (key → metas), the diff not yet announced, and
/// the snapshot handed to joiners. `Presence` keeps one per topic behind a shard lock and does
/// what it returns; tested without sockets or timers.
///
/// Snapshots and diffs fit together as phoenix.js applies them (§15.4 of the protocol notes):
/// - A change goes into the pending diff (`joins`, `leaves`), merged by `phx_ref`: an entry that
///   joins and leaves before the diff goes out is never announced, and an update of an entry not
///   announced yet replaces it in `joins`.
/// - The snapshot a joiner receives is the live state without the pending joins: it never holds
///   an entry the pending diff removes, and the pending diff (which reaches the joiner, since it
///   subscribed first) brings the joins. Because joins leave it unchanged, one encoding serves
///   every joiner until the next diff goes out or an entry leaves: a thousand clients joining a
///   big room do not each pay for encoding its member list.
struct PresenceTopic {
    struct Entry {
        var ref: String
        /// The channel that tracked it (on this node or another).
        var owner: SubscriberID
        /// The meta as sent: a JSON object with `phx_ref` (and `phx_ref_prev` after an update).
        var meta: [UInt8]
        /// Set while the entry lingers in its grace period (its channel has ended).
        var lingersUntil: NIODeadline?

        var isLingering: Bool { lingersUntil != nil }
    }

    /// A change of who is in the topic, for the lifecycle listeners.
    enum Change: Equatable {
        case occupied
        case vacated
        case joined(String)
        case left(String)
    }

    let countOnly: Bool
    /// This node's id when presence is replicated to other nodes: changes of this node's own
    /// entries are then logged for `takeReplication`.
    let replicatedNode: String?
    private var replication: [PresenceOperation] = []
    private(set) var members: OrderedDictionary<String, [Entry]> = [:]
    /// Every meta, lingering ones included.
    private(set) var connections = 0
    var users: Int { members.count }
    var isEmpty: Bool { members.isEmpty }

    private var joins: OrderedDictionary<String, [Entry]> = [:]
    private var leaves: OrderedDictionary<String, [Entry]> = [:]
    private var pendingJoinRefs: Set<String> = []
    private var snapshot: ByteBuffer?

    // Kept here for `Presence`'s timers (their rules are in `Presence`).
    var flushScheduled = false
    var lastFlush = NIODeadline.uptimeNanoseconds(0)
    var lastCount: PresenceCount?
    var lingerTimer: NIODeadline?

    init(countOnly: Bool, replicatedNode: String? = nil) {
        self.countOnly = countOnly
        self.replicatedNode = replicatedNode
    }

    var hasPendingDiff: Bool { !joins.isEmpty || !leaves.isEmpty }
    var count: PresenceCount { PresenceCount(users: users, connections: connections) }

    // MARK: Changes

    /// Adds an entry for `owner` under `key` (the caller has checked that `owner` does not track
    /// `key` yet); `meta` is the app's object as `encodeAppMeta` wrote it. A meta lingering under the key (its grace period running) is replaced in the
    /// same diff, so a page reload is not a leave followed by a join.
    mutating func track(key: String, ref: String, owner: SubscriberID, meta: [UInt8]) -> [Change] {
        let meta = Self.sentMeta(meta, ref: ref, previous: nil)
        var changes: [Change] = []
        if members.isEmpty { changes.append(.occupied) }
        if let entries = members[key] {
            let lingering = entries.filter(\.isLingering)
            if !lingering.isEmpty {
                members[key] = entries.filter { !$0.isLingering }
                connections -= lingering.count
                for entry in lingering { recordLeave(key: key, entry) }
            }
        } else {
            changes.append(.joined(key))
        }
        let entry = Entry(ref: ref, owner: owner, meta: meta)
        members[key, default: []].append(entry)
        connections += 1
        recordJoin(key: key, entry)
        return changes
    }

    /// Replaces `owner`'s meta under `key` (the new one gets `ref`, and the old ref as
    /// `phx_ref_prev`); false when it tracks no such key.
    mutating func update(key: String, owner: SubscriberID, ref: String, meta: [UInt8]) -> Bool {
        guard let index = members[key]?.firstIndex(where: { $0.owner == owner && !$0.isLingering }) else { return false }
        let old = members[key]![index]
        let new = Entry(ref: ref, owner: owner, meta: Self.sentMeta(meta, ref: ref, previous: old.ref))
        members[key]![index] = new
        recordLeave(key: key, old)
        recordJoin(key: key, new)
        return true
    }

    /// Removes `owner`'s entry under `key`. With a grace period, the key's last entry lingers
    /// until `now + grace` instead (then `expire` removes it); returns the changes and whether an
    /// entry started lingering.
    mutating func untrack(key: String, owner: SubscriberID, grace: TimeAmount, now: NIODeadline) -> (changes: [Change], lingering: Bool) {
        guard var entries = members[key], let index = entries.firstIndex(where: { $0.owner == owner && !$0.isLingering }) else { return ([], false) }
        if grace > .zero && entries.count == 1 {
            entries[index].lingersUntil = now + grace
            members[key] = entries
            return ([], true)
        }
        let entry = entries.remove(at: index)
        connections -= 1
        recordLeave(key: key, entry)
        var changes: [Change] = []
        if entries.isEmpty {
            members[key] = nil
            changes.append(.left(key))
            if members.isEmpty { changes.append(.vacated) }
        } else {
            members[key] = entries
        }
        return (changes, false)
    }

    /// Removes the entries whose grace period ended by `now`; returns the changes and the next
    /// end of a grace period still running.
    mutating func expire(now: NIODeadline) -> (changes: [Change], next: NIODeadline?) {
        var changes: [Change] = []
        var next: NIODeadline?
        for key in members.keys {
            guard let entry = members[key]?.first, let until = entry.lingersUntil else { continue }
            if until <= now {
                members[key] = nil
                connections -= 1
                recordLeave(key: key, entry)
                changes.append(.left(key))
            } else {
                next = next.map { min($0, until) } ?? until
            }
        }
        if !changes.isEmpty && members.isEmpty { changes.append(.vacated) }
        return (changes, next)
    }

    private mutating func recordJoin(key: String, _ entry: Entry) {
        if let node = replicatedNode, entry.owner.node == node {
            replication.append(.join(key: key, ref: entry.ref, owner: entry.owner.local, meta: entry.meta))
        }
        guard !countOnly else { return }
        joins[key, default: []].append(entry)
        pendingJoinRefs.insert(entry.ref)
    }

    private mutating func recordLeave(key: String, _ entry: Entry) {
        if let node = replicatedNode, entry.owner.node == node {
            replication.append(.leave(key: key, ref: entry.ref))
        }
        guard !countOnly else { return }
        if pendingJoinRefs.remove(entry.ref) != nil {
            // Never announced: it leaves the pending diff, and the snapshot never held it.
            joins[key]?.removeAll { $0.ref == entry.ref }
            if joins[key]?.isEmpty == true { joins[key] = nil }
            return
        }
        leaves[key, default: []].append(entry)
        snapshot = nil
    }

    // MARK: Other nodes

    /// This node's changes since the last call, for the other nodes.
    mutating func takeReplication() -> [PresenceOperation] {
        defer { replication = [] }
        return replication
    }

    /// Applies another node's changes (joins first, then leaves, as clients apply diffs; a join
    /// already known and a leave of an unknown ref change nothing, so a change may arrive twice).
    mutating func apply(_ operations: [PresenceOperation], from node: String) -> [Change] {
        var changes: [Change] = []
        for case .join(let key, let ref, let owner, let meta) in operations {
            if members[key]?.contains(where: { $0.ref == ref }) == true { continue }
            if members.isEmpty { changes.append(.occupied) }
            if members[key] == nil { changes.append(.joined(key)) }
            let entry = Entry(ref: ref, owner: SubscriberID(node: node, local: owner), meta: meta)
            members[key, default: []].append(entry)
            connections += 1
            recordJoin(key: key, entry)
        }
        for case .leave(let key, let ref) in operations {
            changes += remove(key: key) { $0.ref == ref && $0.owner.node == node }
        }
        return changes
    }

    /// Removes every entry of `node` (a node that stopped, or whose full state follows).
    mutating func removeNode(_ node: String) -> [Change] {
        var changes: [Change] = []
        for key in members.keys where members[key]?.contains(where: { $0.owner.node == node }) == true {
            changes += remove(key: key) { $0.owner.node == node }
        }
        return changes
    }

    /// Replaces `node`'s entries with `entries` (its full state): entries it no longer has leave,
    /// new ones join, the others stay as they are (no diff).
    mutating func replaceNode(_ node: String, with operations: [PresenceOperation]) -> [Change] {
        var wanted = Set<String>()
        for case .join(_, let ref, _, _) in operations { wanted.insert(ref) }
        var changes: [Change] = []
        for key in members.keys where members[key]?.contains(where: { $0.owner.node == node && !wanted.contains($0.ref) }) == true {
            changes += remove(key: key) { $0.owner.node == node && !wanted.contains($0.ref) }
        }
        return changes + apply(operations, from: node)
    }

    /// This node's own entries, as joins.
    func entries(of node: String) -> [PresenceOperation] {
        var result: [PresenceOperation] = []
        for (key, entries) in members {
            for entry in entries where entry.owner.node == node {
                result.append(.join(key: key, ref: entry.ref, owner: entry.owner.local, meta: entry.meta))
            }
        }
        return result
    }

    private mutating func remove(key: String, where matches: (Entry) -> Bool) -> [Change] {
        guard var entries = members[key] else { return [] }
        var removed: [Entry] = []
        entries.removeAll { entry in
            guard matches(entry) else { return false }
            removed.append(entry)
            return true
        }
        guard !removed.isEmpty else { return [] }
        connections -= removed.count
        for entry in removed { recordLeave(key: key, entry) }
        if entries.isEmpty {
            members[key] = nil
            return members.isEmpty ? [.left(key), .vacated] : [.left(key)]
        }
        members[key] = entries
        return []
    }

    // MARK: Encoding

    /// The pending diff as a `presence_diff` payload (`{"joins": …, "leaves": …}`, both always
    /// present), which is then no longer pending; nil when nothing changed.
    mutating func takeDiff() -> ByteBuffer? {
        guard hasPendingDiff else { return nil }
        var buffer = ByteBuffer()
        buffer.writeStaticString("{\"joins\":")
        Self.write(joins, into: &buffer)
        buffer.writeStaticString(",\"leaves\":")
        Self.write(leaves, into: &buffer)
        buffer.writeStaticString("}")
        joins = [:]
        leaves = [:]
        pendingJoinRefs = []
        snapshot = nil
        return buffer
    }

    /// The `presence_state` payload for a joiner: the live state without the pending joins (the
    /// pending diff brings them). Encoded once until it changes.
    mutating func joinerState() -> ByteBuffer {
        if let snapshot { return snapshot }
        var buffer = ByteBuffer()
        let excluded = pendingJoinRefs
        Self.write(members, excluding: excluded, into: &buffer)
        snapshot = buffer
        return buffer
    }

    /// The live state (`{key: {"metas": […]}}`), pending joins included.
    func liveState() -> ByteBuffer {
        var buffer = ByteBuffer()
        Self.write(members, excluding: [], into: &buffer)
        return buffer
    }

    private static func write(_ map: OrderedDictionary<String, [Entry]>, excluding: Set<String> = [], into buffer: inout ByteBuffer) {
        buffer.writeStaticString("{")
        var firstKey = true
        for (key, entries) in map {
            var wroteKey = false
            for entry in entries where excluding.isEmpty || !excluding.contains(entry.ref) {
                if !wroteKey {
                    if !firstKey { buffer.writeStaticString(",") }
                    firstKey = false
                    wroteKey = true
                    JSONWriter.writeString(key, into: &buffer)
                    buffer.writeStaticString(":{\"metas\":[")
                } else {
                    buffer.writeStaticString(",")
                }
                buffer.writeBytes(entry.meta)
            }
            if wroteKey { buffer.writeStaticString("]}") }
        }
        buffer.writeStaticString("}")
    }

    /// The app's part of a meta as JSON object text: its members, without any `phx_ref` /
    /// `phx_ref_prev` of its own (the server sets those).
    static func encodeAppMeta(_ meta: [String: JSONValue]) -> [UInt8] {
        var members = meta
        members["phx_ref"] = nil
        members["phx_ref_prev"] = nil
        var bytes: [UInt8] = []
        JSONWriter.write(.object(members), into: &bytes)
        return bytes
    }

    /// A meta as sent: the app's members, then `phx_ref`, then `phx_ref_prev` after an update.
    static func sentMeta(_ app: [UInt8], ref: String, previous: String?) -> [UInt8] {
        var bytes = app
        bytes.reserveCapacity(app.count + 16 + ref.utf8.count + (previous.map { $0.utf8.count + 18 } ?? 0))
        bytes.removeLast()  // the closing brace
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        bytes.append(contentsOf: "\"phx_ref\":\"".utf8)
        bytes.append(contentsOf: ref.utf8)  // refs are base64url: nothing to escape
        if let previous {
            bytes.append(contentsOf: "\",\"phx_ref_prev\":\"".utf8)
            bytes.append(contentsOf: previous.utf8)
        }
        bytes.append(contentsOf: "\"}".utf8)
        return bytes
    }
}

/// One change of a node's own presences, as it travels to the other nodes.
public enum PresenceOperation: Sendable, Hashable {
    /// An entry arrived: its key, `phx_ref`, owning channel (unique on its node) and meta as
    /// sent (JSON object text with `phx_ref`).
    case join(key: String, ref: String, owner: UInt64, meta: [UInt8])
    /// The entry with this `phx_ref` left.
    case leave(key: String, ref: String)
}

/// How many are present in a topic: users (keys) and connections (metas).
public struct PresenceCount: Sendable, Hashable, Codable {
    public var users: Int
    public var connections: Int

    public init(users: Int, connections: Int) {
        self.users = users
        self.connections = connections
    }

    public static let zero = PresenceCount(users: 0, connections: 0)

    /// `{"users": n, "connections": m}`.
    public var json: JSONValue { ["users": .int(Int64(users)), "connections": .int(Int64(connections))] }
}
