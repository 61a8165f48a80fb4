import Histogram
import NIOCore
import NIOPosix

/// Sends the messages. Lives on one event loop together with its connections, so it needs no
/// locks; the main thread drives it with `submit`.
final class Publisher {
    private let configuration: PublisherConfiguration
    private let loop: any EventLoop
    private let counters: BenchCounters
    private var connections: [PublisherConnectionHandler?]
    private var result = PublishResult()
    private var inFlight = 0
    private var stopAt: UInt64 = 0
    private var running = false
    private var stopped = false
    private var tick: Scheduled<Void>?
    private var responseDeadline: Scheduled<Void>?
    private var done: EventLoopPromise<PublishResult>?
    private var roundRobin = 0
    /// Picks each message's topic (topic groups); a fixed seed makes runs repeatable.
    private var random = SeededRandom(seed: 0x5357_4954_4348)

    init(configuration: PublisherConfiguration, loop: any EventLoop, counters: BenchCounters) {
        self.configuration = configuration
        self.loop = loop
        self.counters = counters
        self.connections = Array(repeating: nil, count: configuration.connections)
        result.connectionSent = Array(repeating: 0, count: configuration.connections)
        if let layout = configuration.topicLayout {
            result.topicAccepted = Array(repeating: 0, count: layout.topicCount)
        }
    }

    /// Opens every connection; fails if one cannot be opened.
    func connect() -> EventLoopFuture<Void> {
        let bound = NIOLoopBound(self, eventLoop: loop)
        let address: SocketAddress
        do { address = try configuration.url.socketAddress() } catch { return loop.makeFailedFuture(error) }
        let futures = (0..<configuration.connections).map { index in
            ClientBootstrap(group: loop)
                .connectTimeout(.nanoseconds(Int64(configuration.connectTimeout * 1e9)))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = PublisherConnectionHandler(index: index, publisher: bound.value)
                        bound.value.connections[index] = handler
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(to: address)
                .map { _ in () }
        }
        return EventLoopFuture.andAllSucceed(futures, on: loop)
    }

    /// Publishes for the configured duration; the future completes once every answer is in
    /// (or the response timeout passed).
    func run() -> EventLoopFuture<PublishResult> {
        let promise = loop.makePromise(of: PublishResult.self)
        done = promise
        running = true
        result.startedAt = MonotonicClock.nanoseconds()
        stopAt = result.startedAt + UInt64(configuration.duration * 1e9)
        pump()
        scheduleTick()
        return promise.futureResult
    }

    /// Ends the publish phase `seconds` from now at the latest (--publish-after-ramp).
    func stop(after seconds: Double) {
        guard running, !stopped else { return }
        stopAt = min(stopAt, MonotonicClock.nanoseconds() + UInt64(seconds * 1e9))
    }

    /// Closes the connections.
    func close() {
        for connection in connections { connection?.close() }
    }

    // MARK: - Sending

    private func scheduleTick() {
        // 1 ms is fine-grained enough for any rate; each tick sends what is due.
        tick = loop.assumeIsolated().scheduleTask(in: .milliseconds(1)) {
            self.pump()
            if !self.stopped { self.scheduleTick() }
        }
    }

    private func pump() {
        guard running, !stopped else { return }
        let now = MonotonicClock.nanoseconds()
        if now >= stopAt {
            stop(at: now)
            return
        }
        if let limit = configuration.messageLimit, result.sent >= limit {
            stop(at: now)
            return
        }
        var due: Int
        if configuration.rate > 0 {
            due = Int(Double(now - result.startedAt) * configuration.rate / 1e9) + 1
        } else {
            due = Int.max
        }
        if let limit = configuration.messageLimit { due = min(due, limit) }
        while result.sent < due, let connection = freeConnection() {
            send(on: connection)
        }
        if configuration.rate > 0 { result.maxBacklog = max(result.maxBacklog, due - result.sent) }
    }

    private func freeConnection() -> PublisherConnectionHandler? {
        let count = connections.count
        for offset in 0..<count {
            let index = (roundRobin + offset) % count
            if let connection = connections[index], connection.isOpen, connection.inFlight < configuration.pipeline {
                roundRobin = (index + 1) % count
                return connection
            }
        }
        return nil
    }

    private func send(on connection: PublisherConnectionHandler) {
        let id = result.sent
        let sequence = connection.nextSequence
        let sentAt = MonotonicClock.nanoseconds()
        var topic = -1
        var topicField = ""
        if let layout = configuration.topicLayout {
            topic = layout.pick(using: &random)
            result.messageTopics.append(Int32(topic))
            topicField = ",\"tp\":\(topic)"
        }
        let fields = "{\"seq\":\(id),\"c\":\(connection.index),\"cs\":\(sequence),\"t\":\(sentAt)\(topicField),\"pad\":\""
        let fieldsLength = fields.utf8.count
        let padding = max(0, configuration.payloadSize - fieldsLength - 2)
        let parts = configuration.bodyParts
        let payloadLength = fieldsLength + padding + 2
        let topicName = topic >= 0 ? configuration.topicNames[topic] : []
        let bodyLength = configuration.bodyPartsLength + configuration.payloadSlots * payloadLength + configuration.topicSlots * topicName.count
        var request = connection.allocator.buffer(capacity: configuration.requestHead.count + 24 + bodyLength)
        request.writeBytes(configuration.requestHead)
        request.writeString("\(bodyLength)\r\n\r\n")
        request.writeBytes(parts[0])
        for (slot, part) in zip(configuration.bodySlots, parts.dropFirst()) {
            switch slot {
            case .payload:
                request.writeString(fields)
                request.writeRepeatingByte(UInt8(ascii: "x"), count: padding)
                request.writeStaticString("\"}")
            case .topic:
                request.writeBytes(topicName)
            }
            request.writeBytes(part)
        }
        connection.send(request, id: id, sentAt: sentAt)
        result.connectionSent[connection.index] = sequence + 1
        result.sent += 1
        result.lastSentAt = sentAt
        inFlight += 1
        counters.published.add(1, ordering: .relaxed)
    }

    private func stop(at now: UInt64) {
        guard !stopped else { return }
        stopped = true
        result.stoppedAt = now
        tick?.cancel()
        counters.publishFinished.store(true, ordering: .relaxed)
        if inFlight == 0 {
            finish()
        } else {
            responseDeadline = loop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(configuration.responseTimeout * 1e9))) {
                self.result.errors += self.inFlight
                self.result.errorKinds["no answer within \(self.configuration.responseTimeout) s", default: 0] += self.inFlight
                self.inFlight = 0
                self.finish()
            }
        }
    }

    private func finish() {
        responseDeadline?.cancel()
        responseDeadline = nil
        running = false
        done?.succeed(result)
        done = nil
    }

    // MARK: - Answers (called by the connections)

    func answered(status: Int, id: Int, sentAt: UInt64) {
        guard inFlight > 0 else { return }
        inFlight -= 1
        let now = MonotonicClock.nanoseconds()
        result.answerLatency.record(min((now > sentAt ? now - sentAt : 0) / 1000, result.answerLatency.highestTrackableValue))
        counters.publishAnswered.add(1, ordering: .relaxed)
        if (200..<300).contains(status) {
            result.accepted += 1
            if !result.topicAccepted.isEmpty, id < result.messageTopics.count {
                result.topicAccepted[Int(result.messageTopics[id])] += 1
            }
        } else {
            result.errors += 1
            result.errorKinds["HTTP \(status)", default: 0] += 1
        }
        if stopped {
            if inFlight == 0, done != nil { finish() }
        } else {
            pump()
        }
    }

    func connectionClosed(index: Int, unanswered: Int, reason: String) {
        if unanswered > 0, inFlight > 0 {
            let lost = min(unanswered, inFlight)
            inFlight -= lost
            result.errors += lost
            result.errorKinds["connection closed with requests in flight (\(reason))", default: 0] += lost
        }
        if running, !stopped, !connections.contains(where: { $0?.isOpen == true }) {
            result.errorKinds["every publisher connection closed before the end", default: 0] += 1
            stop(at: MonotonicClock.nanoseconds())
        } else if stopped, inFlight == 0, done != nil {
            finish()
        }
    }
}
