import Foundation
import Switchboard
import SwitchboardRESP

/// Cluster-wide subscriber counts.
///
/// Every node writes its own topic → local subscriber count into a Redis hash
/// (`<keyPrefix>node:<nodeID>:topics`) every `countsInterval`, replacing it atomically
/// (`MULTI`/`EXEC`) and giving it a TTL of `countsTTL`; a node that stops (or loses Redis) has its
/// counts expire. The node ids are kept in a sorted set `<keyPrefix>nodes` (pruned after ten TTLs).
/// A cluster total is this node's live count plus the other nodes' last written counts, so it
/// lags by at most `countsInterval` for other nodes' changes.
extension RedisBroker {
    /// Reports `hub`'s local subscriber counts to the cluster (call once, after creating the hub).
    public func countSubscribers(of hub: Hub) {
        countSource.withLock { $0 = CountSource(counts: { [weak hub] in hub?.localTopics() ?? [:] }) }
    }

    var nodesKey: String { configuration.keyPrefix + "nodes" }

    func countsKey(node: String) -> String { configuration.keyPrefix + "node:" + node + ":topics" }

    func countsLoop() async {
        while !Task.isCancelled {
            await writeCounts()
            do {
                try await Task.sleep(for: configuration.countsInterval)
            } catch {
                return
            }
        }
    }

    /// Replaces this node's counts in Redis with the hub's current ones.
    func writeCounts() async {
        guard client.isConnected, let source = countSource.withLock({ $0 }) else { return }
        let counts = source.counts()
        let key = countsKey(node: nodeID)
        let ttl = configuration.countsTTL.components
        let ttlMilliseconds = max(1, ttl.seconds * 1000 + ttl.attoseconds / 1_000_000_000_000_000)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var commands = [RESPCommand("MULTI"), RESPCommand("DEL", key)]
        if !counts.isEmpty {
            var fields: [RESPCommand.Argument] = [.string(key)]
            for (topic, count) in counts {
                fields.append(.string(topic))
                fields.append(.string(String(count)))
            }
            commands.append(RESPCommand("HSET", arguments: fields))
            commands.append(RESPCommand("PEXPIRE", key, String(ttlMilliseconds)))
        }
        commands.append(RESPCommand("EXEC"))
        commands.append(RESPCommand("ZADD", nodesKey, String(now), nodeID))
        commands.append(RESPCommand("ZREMRANGEBYSCORE", nodesKey, "-inf", String(now - 10 * ttlMilliseconds)))
        for case .failure(let error) in await client.send(commands) {
            logger.debug("could not write subscriber counts to Redis", metadata: ["error": "\(error)"])
            return
        }
    }

    /// Subscriber counts of every topic summed over all nodes (this node's live counts plus the
    /// others' last reported ones).
    public func clusterSubscriberCounts() async throws -> [String: Int] {
        var totals = countSource.withLock { $0 }?.counts() ?? [:]
        let others = try await otherNodes()
        guard !others.isEmpty else { return totals }
        for result in await client.send(others.map { RESPCommand("HGETALL", countsKey(node: $0)) }) {
            guard case .map(let entries) = try result.get() else { continue }
            for entry in entries {
                guard let topic = entry.key.string, let count = entry.value.int else { continue }
                totals[topic, default: 0] += Int(count)
            }
        }
        return totals
    }

    /// Subscribers of `topic` summed over all nodes.
    public func clusterSubscriberCount(topic: String) async throws -> Int {
        var total = countSource.withLock { $0 }?.counts()[topic] ?? 0
        let others = try await otherNodes()
        guard !others.isEmpty else { return total }
        for result in await client.send(others.map { RESPCommand("HGET", countsKey(node: $0), topic) }) {
            total += Int(try result.get().int ?? 0)
        }
        return total
    }

    func otherNodes() async throws -> [String] {
        let reply = try await client.send(RESPCommand("ZRANGE", nodesKey, "0", "-1"))
        return (reply.elements ?? []).compactMap(\.string).filter { $0 != nodeID }
    }
}
