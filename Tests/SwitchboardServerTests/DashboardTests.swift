import Foundation
import Logging
import Switchboard
import SwitchboardTestSupport
import Synchronization
import Testing

@testable import SwitchboardServer

/// Records what reaches it (the handler `RecentErrorsLogHandler` wraps).
struct RecordingLogHandler: LogHandler {
    final class Lines: Sendable {
        let values = Mutex<[String]>([])
    }

    let lines = Lines()
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.values.withLock { $0.append("\(event.level.rawValue) \(event.message)") }
    }
}

/// Joins anyone, does nothing else.
struct GenericChannelForTests: TopicChannel {
    func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult { .ok() }
}

@Suite struct DashboardTests {
    @Test func recentErrorsKeepsTheLastWarningsAndForwardsEverything() {
        let recording = RecordingLogHandler()
        var logger = Logger(label: "test")
        logger.handler = RecentErrorsLogHandler(wrapping: recording, recentErrors: RecentErrors(capacity: 3))
        logger.logLevel = .debug
        #expect(recording.lines.values.withLock { $0 }.isEmpty)
        logger.debug("quiet")
        logger.info("hello")
        for index in 1...5 {
            logger.warning("warning \(index)", metadata: ["switchboard.topic": "room:\(index)"])
        }
        logger.error("broken")
        #expect(recording.lines.values.withLock { $0 }.count == 8, "every entry reaches the wrapped handler")

        let recent = RecentErrorsLogHandler.recentErrors(of: logger).entries()
        #expect(recent.total == 6)
        #expect(recent.entries.map(\.message) == ["warning 4 switchboard.topic=room:4", "warning 5 switchboard.topic=room:5", "broken"])
        #expect(recent.entries.map(\.level) == [.warning, .warning, .error])
        // The level set through the logger is the wrapped handler's.
        #expect(logger.logLevel == .debug)
    }

    @Test func longMessagesAreCut() {
        let recent = RecentErrors(capacity: 2, maxMessageLength: 5)
        recent.append(.init(time: Date(), level: .error, label: "x", message: "abcdefgh"))
        #expect(recent.entries().entries.map(\.message) == ["abcde…"])
    }

    @Test func keyComparison() {
        let key = Array("interop-key".utf8)
        #expect(DashboardChannel.constantTimeEquals(key, key))
        #expect(!DashboardChannel.constantTimeEquals(Array("interop-kex".utf8), key))
        #expect(!DashboardChannel.constantTimeEquals(Array("interop-key2".utf8), key))
        #expect(!DashboardChannel.constantTimeEquals(Array("interop-ke".utf8), key))
        #expect(!DashboardChannel.constantTimeEquals([], key))
        #expect(!DashboardChannel.constantTimeEquals(key + key, key), "a repeated key is not the key")
        #expect(!DashboardChannel.constantTimeEquals([], []), "an empty key opens nothing")
    }

    @Test func statsRatesLeaveOutTheDashboardsOwnMessages() {
        let service = DashboardService(hub: Hub(), recentErrors: RecentErrors())
        let before = SwitchboardMetrics.snapshot()
        var after = before
        after.messagesIn += 4
        after.broadcasts += 11
        after.deliveries += 102
        let stats = service.makeStats(
            current: after,
            previous: before,
            elapsed: .seconds(2),
            own: (broadcasts: 1, deliveries: 2),
            now: Date(timeIntervalSince1970: 1)
        )
        #expect(stats["time"] == JSONValue.int(1000))
        #expect(stats["connections"]?["total"] == JSONValue.int(Int64(before.connections)))
        #expect(stats["rates"] == JSONValue.object(["messagesIn": .double(2), "broadcasts": .double(5), "deliveries": .double(50)]))
        #expect(stats["totals"]?["deliveries"] == JSONValue.int(Int64(after.deliveries)))
        #expect(stats["topTopics"] == JSONValue.array([]))
    }

    /// Tracks every joiner under the `user` of its join payload.
    struct TrackingChannel: TopicChannel {
        func join(topic: String, payload: JSONValue, socket: inout ChannelSocket) async throws -> JoinResult {
            try socket.track(key: payload["user"]?.stringValue ?? "nobody")
            return .ok()
        }
    }

    @Test func busiestTopicsShowWhoIsOnlineWhereThereIsPresence() async throws {
        let hub = Hub(nodeID: "n")
        var socket = PhoenixSocket(hub: hub)
        socket.channel("lobby:*", TrackingChannel())
        socket.channel("plain:*", GenericChannelForTests())
        var clients: [ChannelTest] = []
        for user in ["ana", "bo", "ana"] {
            let client = try ChannelTest(socket: socket)
            try await client.join("lobby:1", ["user": .string(user)])
            try await client.join("plain:1")
            clients.append(client)
        }
        let service = DashboardService(hub: hub, recentErrors: RecentErrors())
        let snapshot = SwitchboardMetrics.snapshot()
        let stats = service.makeStats(current: snapshot, previous: snapshot, elapsed: .seconds(1), own: (0, 0))
        let top = stats["topTopics"]?.arrayValue ?? []
        #expect(top.first { $0["topic"] == "lobby:1" } == ["topic": "lobby:1", "subscribers": 3, "users": 2, "connections": 3])
        #expect(top.first { $0["topic"] == "plain:1" } == ["topic": "plain:1", "subscribers": 3])
        _ = clients
    }

    @Test func internalHubEntriesAreNotTopics() {
        #expect(DashboardService.isInternal("user_socket:42"))
        #expect(DashboardService.isInternal(DashboardChannel.topic))
        #expect(DashboardService.isInternal(OnlineChannel.membersRoom))
        #expect(!DashboardService.isInternal("room:lobby"))
        #expect(!DashboardService.isInternal("online"))
    }
}
