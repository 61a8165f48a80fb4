import ArgumentParser
import Dispatch
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension SubscriberConfiguration.WireProtocol: ExpressibleByArgument {}

/// `switchboard-bench`: end-to-end load for Switchboard (and peers such as nginx + nchan).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard-bench",
        abstract: "Fan-out and connection-capacity load generator for Switchboard (Phoenix Channels over WebSocket, and Server-Sent Events).",
        discussion: """
            Fan-out (default): opens --subscribers WebSocket connections (ramped, spread over \
            127.0.0.1..127.0.0.N), joins each to --topic, then publishes --rate messages/s for \
            --duration seconds over HTTP and measures every delivery: lost, duplicated, out of \
            order, latency percentiles, broadcast completion time, server CPU and RSS \
            (--server-pid), and its own CPU. The last line is SUMMARY {json}.

            Idle (--idle): opens and joins the connections, holds them for --duration seconds and \
            reports the server's RSS per connection.

            Raw WebSocket peers (e.g. nginx + nchan): --protocol raw --url ws://127.0.0.1:8080/sub/bench \
            --publish-url http://127.0.0.1:8080/pub/bench (the body defaults to the raw payload).

            Server-Sent Events: --protocol sse --url http://127.0.0.1:4000/events/public:bench \
            --topic public:bench (Switchboard), or --protocol sse --url http://127.0.0.1:8080/sub/bench \
            --publish-url http://127.0.0.1:8080/pub/bench (nchan's EventSource subscribers). Each \
            subscriber sends GET with Accept: text/event-stream, expects a 200 text/event-stream \
            head, and takes every event's data as one payload.

            Slow consumers (--slow-fraction F, e.g. 0.01): ⌊N·F⌋ of the N subscribers, evenly \
            spread (0.01: subscribers 99, 199, …), connect and join like the others, then stop \
            reading from their sockets when publishing starts, so the server's queue to them grows \
            (bigger --payload-size fills it sooner; loopback socket buffers hold several MB). They \
            are left out of every delivery number (expected, lost, latency, completion) and of \
            closed_during_run, which cover the healthy subscribers only. After the drain they read again for at most 5 s \
            in all, and the report counts those the server closed (with its close code, or the \
            SSE switchboard:close event's) and those still open (SUMMARY: slow_subscribers, \
            slow_closed_by_server, slow_still_open). Any --protocol.

            Many small topics (--topic-groups G, v2 and v1): subscriber i joins two topics over \
            its connection, <topic>:u<i> (its own) and <topic>:g<i/G> (its group of G), e.g. \
            public:bench:u17 and public:bench:g1. Each message goes to one topic picked at \
            random with a fixed seed (a group topic with probability --group-share, else a \
            personal one), named in {{topic}} of the body; it is expected by exactly the joined \
            subscribers of that topic, and a delivery to any other subscriber counts as \
            unexpected. Order is still checked per publisher connection (a subscriber sees a \
            subset of each connection's messages, increasing), and broadcast completion is per \
            message, against its topic's size. SUMMARY: topics, topic_groups, group_share.

            Presence (--user-ids, --publish-during-ramp): with --user-ids subscriber i connects with \
            user_id=u<i> in its URL's query, so each one is a user of its own in a presence topic. \
            presence_state, presence_diff and presence_count frames are counted apart (frames, \
            bytes, diffs per subscriber-second, the most diffs one subscriber got in one second; \
            SUMMARY presence_*), never as deliveries or other frames. --publish-during-ramp starts \
            publishing before the subscribers connect, so broadcasts go to the topic while \
            --ramp joins per second arrive (churn); --duration should outlast the ramp, and \
            --publish-after-ramp S ends publishing S seconds after the last subscriber joined or \
            failed (so a slow ramp is covered too). Each subscriber then expects, of each publisher \
            connection, the messages from the first one it received on that connection (lost \
            counts what is missing after it; subscribers_without_delivery those that got none), \
            and the SUMMARY adds presence_diffs_per_sub_s_ramp, the diffs per subscriber-second \
            while the ramp ran.

            Only loopback targets (127.0.0.0/8) are accepted. Every phase is bounded in time.
            """
    )

    @Option(help: "Subscriber URL (loopback only): ws:// for v2, v1 and raw (for v1/v2 the vsn query parameter is added), http:// for sse.")
    var url = "ws://127.0.0.1:4000/socket/websocket"

    @Option(
        name: .customLong("protocol"),
        help: "v2 (Phoenix V2 JSON), v1 (Phoenix V1 JSON), raw (plain WebSocket, no join, no heartbeat) or sse (Server-Sent Events over HTTP/1.1)."
    )
    var wireProtocol = SubscriberConfiguration.WireProtocol.v2

    @Option(help: "Subscriber connections.")
    var subscribers = 1000

    @Option(help: "Topic every subscriber joins and the publisher publishes to (pick one whose join has no side effects).")
    var topic = "realtime:bench"

    @Option(help: "Join payload (JSON object).")
    var joinPayload = "{}"

    @Option(help: "New subscriber connections per second.")
    var ramp = 2000.0

    @Option(help: "Most subscriber handshakes (connect + upgrade + join) in progress at once.")
    var maxPending = 1000

    @Option(help: "Bind subscribers to 127.0.0.1 … 127.0.0.N in turn, so more than one ephemeral port range is available (1 = do not bind).")
    var sourceAddresses = 4

    @Option(
        help:
            "Seconds between Phoenix heartbeats per connection (raw: WebSocket pings, so a server's idle timeout does not close a long run; 0 = none)."
    )
    var heartbeat = 30.0

    @Option(help: "Seconds allowed for each TCP connect, and again for the upgrade and join.")
    var connectTimeout = 10.0

    @Flag(help: "Idle mode: hold the joined connections for --duration seconds and report server memory; no publishing.")
    var idle = false

    @Option(help: "Publish URL (http://, loopback only). Default: POST /api/broadcast on the subscriber URL's host and port.")
    var publishURL: String?

    @Option(
        help:
            "Request body; each {{payload}} and {{topic}} is replaced. Default: the Switchboard API envelope {\"topic\":\"{{topic}}\",\"event\":\"bench\",\"payload\":{{payload}}}, or just {{payload}} with --publish-url."
    )
    var publishBody: String?

    @Option(help: "Content-Type of publish requests.")
    var contentType = "application/json"

    @Option(help: "API key sent as Authorization: Bearer <key>. Default: $SWITCHBOARD_API_KEY (none if unset).")
    var apiKey: String?

    @Option(help: "Messages per second, open loop (0 = as fast as the bounded in-flight requests allow).")
    var rate = 100.0

    @Option(help: "Seconds of publishing (idle mode: seconds to hold the connections).")
    var duration = 10.0

    @Option(help: "Stop publishing after this many messages (the phase still ends after --duration at the latest).")
    var messages: Int?

    @Option(help: "Payload size in bytes: the JSON object {\"seq\",\"c\",\"cs\",\"t\",\"pad\"} padded to this size.")
    var payloadSize = 100

    @Option(
        help:
            "Share of subscribers (0 ≤ F < 1) that stop reading when publishing starts: slow consumers, left out of the delivery numbers; the report says whether the server closed them."
    )
    var slowFraction = 0.0

    @Option(
        help:
            "Many small topics (v2/v1): each subscriber joins <topic>:u<i> and its group's <topic>:g<i/G>; messages go to random topics (0 = off: one topic for all)."
    )
    var topicGroups = 0

    @Option(help: "With --topic-groups: share of messages that go to a group topic (the rest go to personal topics).")
    var groupShare = 0.5

    @Flag(name: .customLong("user-ids"), help: "Subscriber i connects with user_id=u<i> added to the URL's query (one presence user per connection).")
    var userIDs = false

    @Flag(
        name: .customLong("publish-during-ramp"),
        help: "Fan-out: publish from before the first connect, for --duration s, so broadcasts go out while the subscribers join (churn)."
    )
    var publishDuringRamp = false

    @Option(help: "With --publish-during-ramp: stop publishing this many seconds after the ramp ended (--duration still bounds the phase).")
    var publishAfterRamp: Double?

    @Option(help: "Publisher HTTP/1.1 keep-alive connections.")
    var publishConnections = 4

    @Option(help: "Requests in flight per publisher connection (> 1 pipelines requests).")
    var pipeline = 1

    @Option(help: "Seconds to wait for answers to outstanding publish requests after the publish phase.")
    var responseTimeout = 10.0

    @Option(help: "Seconds to wait for outstanding deliveries after the publish phase.")
    var drainTimeout = 10.0

    @Option(help: "The server's process id: report its CPU seconds and RSS from /proc (its child processes included, e.g. nginx workers).")
    var serverPid: Int32?

    @Option(
        help:
            "Event loop threads for the subscribers (default: half the cores, at least 1: the server shares the machine). The publisher has one more thread of its own."
    )
    var threads: Int?

    @Flag(help: "Exit with status 1 when anything was lost, duplicated, out of order, refused, or failed to connect.")
    var strict = false

    @Flag(help: "No progress lines on stderr.")
    var quiet = false

    @Flag(help: "Also report each event loop's latency and the five slowest broadcasts.")
    var verbose = false

    func validate() throws {
        guard subscribers >= 1 else { throw ValidationError("--subscribers must be at least 1") }
        guard ramp > 0 else { throw ValidationError("--ramp must be positive") }
        guard maxPending >= 1 else { throw ValidationError("--max-pending must be at least 1") }
        guard (1...254).contains(sourceAddresses) else { throw ValidationError("--source-addresses must be 1…254") }
        guard heartbeat >= 0 else { throw ValidationError("--heartbeat must be 0 or positive") }
        guard connectTimeout > 0, connectTimeout <= 600 else { throw ValidationError("--connect-timeout must be in (0, 600]") }
        guard rate >= 0 else { throw ValidationError("--rate must be 0 (max) or positive") }
        guard duration > 0, duration <= 86_400 else { throw ValidationError("--duration must be in (0, 86400]") }
        if let messages { guard messages >= 1 else { throw ValidationError("--messages must be at least 1") } }
        guard (0...(1 << 20)).contains(payloadSize) else { throw ValidationError("--payload-size must be 0…1 MiB") }
        guard (1...256).contains(publishConnections) else { throw ValidationError("--publish-connections must be 1…256") }
        guard (1...1024).contains(pipeline) else { throw ValidationError("--pipeline must be 1…1024") }
        guard responseTimeout > 0, responseTimeout <= 600 else { throw ValidationError("--response-timeout must be in (0, 600]") }
        guard drainTimeout >= 0, drainTimeout <= 600 else { throw ValidationError("--drain-timeout must be in [0, 600]") }
        if let threads { guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1…256") } }
        guard joinPayload.first == "{" else { throw ValidationError("--join-payload must be a JSON object") }
        guard slowFraction >= 0, slowFraction < 1 else { throw ValidationError("--slow-fraction must be in [0, 1)") }
        if slowFraction > 0, idle { throw ValidationError("--slow-fraction applies to fan-out runs, not --idle") }
        guard topicGroups >= 0 else { throw ValidationError("--topic-groups must be 0 (off) or a group size ≥ 1") }
        if topicGroups > 0, wireProtocol == .raw || wireProtocol == .sse {
            throw ValidationError("--topic-groups needs --protocol v2 or v1: a \(wireProtocol.rawValue) subscriber gets one topic, from its URL")
        }
        guard groupShare >= 0, groupShare <= 1 else { throw ValidationError("--group-share must be in [0, 1]") }
        if let publishAfterRamp {
            guard publishDuringRamp else { throw ValidationError("--publish-after-ramp needs --publish-during-ramp") }
            guard publishAfterRamp >= 0 else { throw ValidationError("--publish-after-ramp must be 0 or positive") }
        }
        if publishDuringRamp {
            guard !idle else { throw ValidationError("--publish-during-ramp applies to fan-out runs, not --idle") }
            guard slowFraction == 0, topicGroups == 0 else {
                throw ValidationError("--publish-during-ramp cannot be combined with --slow-fraction or --topic-groups")
            }
        }
    }

    func run() throws {
        var subscriberURL = try BenchURL(url, allowed: wireProtocol == .sse ? [.http] : [.ws])
        switch wireProtocol {
        case .v2: subscriberURL = subscriberURL.addingQueryItem("vsn", "2.0.0")
        case .v1: subscriberURL = subscriberURL.addingQueryItem("vsn", "1.0.0")
        case .raw, .sse: break
        }
        let threadCount = threads ?? max(1, System.coreCount / 2)
        let subscriberConfiguration = SubscriberConfiguration(
            wireProtocol: wireProtocol,
            url: subscriberURL,
            topic: topic,
            joinPayload: joinPayload,
            heartbeatInterval: wireProtocol == .sse ? 0 : heartbeat,
            handshakeTimeout: connectTimeout,
            publisherConnections: publishConnections,
            topicLayout: topicLayout,
            slowFraction: slowFraction,
            userIDPrefix: userIDs ? "u" : nil
        )
        let publisherConfiguration = try makePublisherConfiguration(subscriberURL: subscriberURL)
        if let serverPid, ProcessStats.sample(pid: serverPid) == nil {
            throw BenchError("--server-pid \(serverPid): cannot read /proc/\(serverPid)/stat")
        }
        if idle, heartbeat == 0 || heartbeat >= 60, wireProtocol != .sse, duration >= 60 {
            Output.warn("warning: without heartbeats under 60 s a Phoenix server closes idle connections after 60 s")
        }

        let filesNeeded = subscribers + publishConnections + 64
        let filesAllowed = ProcessStats.raiseOpenFileLimit(to: filesNeeded)
        if filesAllowed < filesNeeded {
            Output.warn("warning: the open-file limit is \(filesAllowed) but \(subscribers) subscribers need about \(filesNeeded); raise ulimit -n")
        }
        startWatchdog()
        let counters = BenchCounters(loops: threadCount)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threadCount)
        let publisherGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer {
            try? group.syncShutdownGracefully()
            try? publisherGroup.syncShutdownGracefully()
        }
        let pool = try SubscriberPool(
            group: group,
            configuration: subscriberConfiguration,
            counters: counters,
            sourceAddresses: sourceAddresses,
            connectTimeout: connectTimeout
        )
        let context = RunContext(
            command: self,
            subscriberURL: subscriberURL,
            threads: threadCount,
            counters: counters,
            group: group,
            publisherGroup: publisherGroup,
            pool: pool,
            publisherConfiguration: publisherConfiguration
        )
        let passed = idle ? try runIdle(context) : try runFanOut(context)
        Output.flush()
        if strict, !passed { throw ExitCode(1) }
    }

    private func makePublisherConfiguration(subscriberURL: BenchURL) throws -> PublisherConfiguration {
        let publishTarget: BenchURL
        let body: String
        if let publishURL {
            publishTarget = try BenchURL(publishURL, allowed: [.http])
            body = publishBody ?? "{{payload}}"
        } else {
            publishTarget = try BenchURL("http://\(subscriberURL.hostHeader)/api/broadcast", allowed: [.http])
            body = publishBody ?? "{\"topic\":\"{{topic}}\",\"event\":\"bench\",\"payload\":{{payload}}}"
        }
        let key = apiKey ?? getenv("SWITCHBOARD_API_KEY").map { String(cString: $0) }
        return try PublisherConfiguration(
            url: publishTarget,
            bodyTemplate: body,
            topic: topic,
            apiKey: key,
            contentType: contentType,
            rate: rate,
            duration: duration,
            messageLimit: messages,
            connections: publishConnections,
            pipeline: pipeline,
            payloadSize: payloadSize,
            responseTimeout: responseTimeout,
            connectTimeout: connectTimeout,
            topicLayout: idle ? nil : topicLayout
        )
    }

    /// The many-small-topics layout (nil without --topic-groups).
    var topicLayout: TopicLayout? {
        topicGroups > 0 ? TopicLayout(base: topic, subscribers: subscribers, groupSize: topicGroups, groupShare: groupShare) : nil
    }

    /// Ends the process if the phases overrun their bounds by a wide margin (a bug or a wedged
    /// peer): the bench must always exit.
    private func startWatchdog() {
        let connectPhase = Double(subscribers) / ramp * 3 + 4 * connectTimeout + 30
        let rest =
            idle
            ? duration + 10
            : connectTimeout + duration + responseTimeout + drainTimeout + 10 + (slowFraction > 0 ? SlowConsumerReport.probeSeconds : 0)
        let limit = connectPhase + rest + 60
        DispatchQueue.global().asyncAfter(deadline: .now() + limit) {
            Output.warn("still running after \(Int(limit)) s; giving up")
            Output.flush()
            terminateProcess(3)
        }
    }
}
