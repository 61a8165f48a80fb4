import Foundation
import ServiceLifecycle
import Switchboard
import SwitchboardHummingbird

/// Publishes the server's live statistics on `DashboardChannel.topic` (event `stats`) every
/// second, while at least one client on this node is joined to it (otherwise it only takes the
/// counters' snapshot, a few atomic loads, so the first rates after a join are already right).
///
/// The payload:
/// ```json
/// {"time": 1795000000000, "node": "…", "interval": 1.0,
///  "connections": {"websocket": 3, "sse": 1, "longpoll": 0, "total": 4},
///  "rates": {"messagesIn": 2.0, "broadcasts": 10.0, "deliveries": 30.0},
///  "totals": {"messagesIn": …, "broadcasts": …, "deliveries": …, "slowConsumerDisconnects": …, "joins": …},
///  "topics": 5, "topTopics": [{"topic": "room:lobby", "subscribers": 3}, {"topic": "online", "subscribers": 4, "users": 2, "connections": 4}],
///  "errors": 2, "recentErrors": [{"time": 1795000000000, "level": "warning", "label": "…", "message": "…"}]}
/// ```
/// Rates are per second over the last interval and leave out the dashboard's own `stats`
/// messages; subscriber counts are this node's; `time` is milliseconds since 1970.
struct DashboardService: Service {
    let hub: Hub
    let recentErrors: RecentErrors
    var interval: Duration = .seconds(1)
    /// How many topics `topTopics` lists (the most subscribed first).
    var topTopicCount = 10

    func run() async throws {
        // Stop at once on graceful shutdown rather than after the current second.
        await cancelWhenGracefulShutdown { await self.publishEverySecond() }
    }

    private func publishEverySecond() async {
        let clock = ContinuousClock()
        var previous = (time: clock.now, counts: SwitchboardMetrics.snapshot())
        var own = (broadcasts: 0, deliveries: 0)  // the last stats message, not counted in the next rates
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            let current = (time: clock.now, counts: SwitchboardMetrics.snapshot())
            defer { previous = current }
            let viewers = hub.localSubscriberCount(topic: DashboardChannel.topic)
            guard viewers > 0 else {
                own = (0, 0)
                continue
            }
            let stats = makeStats(current: current.counts, previous: previous.counts, elapsed: current.time - previous.time, own: own)
            hub.broadcast(topic: DashboardChannel.topic, event: "stats", payload: stats)
            own = (1, viewers)
        }
    }

    /// The `stats` payload from two snapshots `elapsed` apart.
    func makeStats(
        current: SwitchboardMetrics.Snapshot,
        previous: SwitchboardMetrics.Snapshot,
        elapsed: Duration,
        own: (broadcasts: Int, deliveries: Int),
        now: Date = Date()
    ) -> JSONValue {
        let seconds = max(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, 0.001)
        func rate(_ difference: Int) -> JSONValue {
            .double((Double(max(difference, 0)) / seconds * 10).rounded() / 10)
        }
        let topics = hub.localTopics().filter { !Self.isInternal($0.key) }
        let top = topics.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(topTopicCount)
        let (errors, errorCount) = recentErrors.entries()
        return [
            "time": .int(Self.milliseconds(now)),
            "node": .string(hub.nodeID),
            "interval": .double(seconds),
            "connections": [
                "websocket": .int(Int64(current.webSocketConnections)),
                "sse": .int(Int64(current.eventStreamConnections)),
                "longpoll": .int(Int64(current.longPollSessions)),
                "total": .int(Int64(current.connections)),
            ],
            "rates": [
                "messagesIn": rate(current.messagesIn - previous.messagesIn),
                "broadcasts": rate(current.broadcasts - previous.broadcasts - own.broadcasts),
                "deliveries": rate(current.deliveries - previous.deliveries - own.deliveries),
            ],
            "totals": [
                "messagesIn": .int(Int64(current.messagesIn)),
                "broadcasts": .int(Int64(current.broadcasts)),
                "deliveries": .int(Int64(current.deliveries)),
                "slowConsumerDisconnects": .int(Int64(current.slowConsumerDisconnects)),
                "joins": .int(Int64(current.joins)),
            ],
            "topics": .int(Int64(topics.count)),
            "topTopics": .array(top.map { HubAPI.topicEntry($0.key, subscribers: $0.value, presence: hub.presence) }),
            "errors": .int(Int64(errorCount)),
            "recentErrors": .array(
                errors.reversed().map { entry in
                    [
                        "time": .int(Self.milliseconds(entry.time)),
                        "level": .string(entry.level.rawValue),
                        "label": .string(entry.label),
                        "message": .string(entry.message),
                    ]
                }
            ),
        ]
    }

    /// Hub entries that are not topics people publish to: a connection's socket id
    /// (`user_socket:42`, for `disconnect`), the server's own `switchboard:*` topics, the online
    /// count's member room.
    static func isInternal(_ topic: String) -> Bool {
        topic.hasPrefix("user_socket:") || topic.hasPrefix("switchboard:") || topic == OnlineChannel.membersRoom
    }

    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }
}
