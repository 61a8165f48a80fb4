import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The subscriber connections, spread round-robin over the event loops and source addresses.
struct SubscriberPool: Sendable {
    let loops: [any EventLoop]
    let stats: [NIOLoopBound<LoopStats>]
    let configuration: SubscriberConfiguration
    let counters: BenchCounters
    let server: SocketAddress
    /// Local addresses to bind to in turn (nil = let the kernel choose).
    let sources: [SocketAddress?]
    let connectTimeout: Double

    init(
        group: MultiThreadedEventLoopGroup,
        configuration: SubscriberConfiguration,
        counters: BenchCounters,
        sourceAddresses: Int,
        connectTimeout: Double
    ) throws {
        let loops = group.makeIterator().map { $0 }
        self.loops = loops
        self.stats = try loops.enumerated().map { index, loop in
            try loop.submit { NIOLoopBound(LoopStats(counters: counters.loops[index]), eventLoop: loop) }.wait()
        }
        self.configuration = configuration
        self.counters = counters
        self.server = try configuration.url.socketAddress()
        self.sources = try sourceAddresses <= 1 ? [nil] : (1...sourceAddresses).map { try SocketAddress(ipAddress: "127.0.0.\($0)", port: 0) }
        self.connectTimeout = connectTimeout
    }

    /// Starts connection number `index`; its outcome shows up in `counters`.
    func open(_ index: Int) {
        let loop = loops[index % loops.count]
        let stats = self.stats[index % loops.count]
        let configuration = self.configuration
        let counters = self.counters
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(Int64(connectTimeout * 1e9)))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        SubscriberHandler(configuration: configuration, stats: stats.value, counters: counters, index: index)
                    )
                }
            }
        if let source = sources[index % sources.count] {
            // IP_BIND_ADDRESS_NO_PORT (24): pick the port at connect time, by the whole 4-tuple,
            // instead of reserving a port per source address at bind time.
            bootstrap =
                bootstrap
                .channelOption(ChannelOptions.Types.SocketOption(level: .ip, name: .init(rawValue: 24)), value: 1)
                .bind(to: source)
        }
        counters.connectsStarted.add(1, ordering: .relaxed)
        bootstrap.connect(to: server).whenFailure { error in
            counters.connectionFailed("connect: \(error)")
        }
    }

    struct RampResult: Sendable {
        var started = 0
        var seconds = 0.0
        var timedOut = false
    }

    /// Opens `count` connections at `rate` per second with at most `maxPending` handshakes in
    /// progress, and waits until each one joined or failed. Blocks the calling thread; bounded.
    func rampUp(count: Int, rate: Double, maxPending: Int, handshakeTimeout: Double, progress: Bool) -> RampResult {
        var result = RampResult()
        let start = MonotonicClock.nanoseconds()
        let hardLimit = start + UInt64((Double(count) / rate * 3 + 2 * (connectTimeout + handshakeTimeout) + 30) * 1e9)
        var lastStart = start
        var nextProgress = start + 1_000_000_000
        while true {
            let now = MonotonicClock.nanoseconds()
            let settled = counters.joined.load(ordering: .relaxed) + counters.failed.load(ordering: .relaxed)
            if settled >= count { break }
            if now > hardLimit || (result.started == count && now > lastStart + UInt64((connectTimeout + handshakeTimeout + 2) * 1e9)) {
                result.timedOut = true
                break
            }
            let allowed = min(count, Int(Double(now - start) / 1e9 * rate) + 1)
            while result.started < allowed, result.started - settled < maxPending {
                open(result.started)
                result.started += 1
                lastStart = now
            }
            if progress, now >= nextProgress {
                nextProgress += 1_000_000_000
                Output.progress(
                    "connect: \(result.started) started, \(counters.tcpConnected.load(ordering: .relaxed)) tcp, \(counters.joined.load(ordering: .relaxed)) joined, \(counters.failed.load(ordering: .relaxed)) failed",
                    since: start
                )
            }
            usleep(2000)
        }
        result.seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
        return result
    }

    /// Every loop's measurements. `expected`: messages per subscriber; with topic groups,
    /// `topicAccepted` (accepted messages per topic number) gives each subscriber its own.
    func snapshots(expected: Int, topicAccepted: [Int]? = nil, connectionSent: [Int]? = nil) throws -> [LoopSnapshot] {
        try zip(loops, stats).map { loop, stats in
            try loop.submit { stats.value.snapshot(expected: expected, topicAccepted: topicAccepted, connectionSent: connectionSent) }.wait()
        }
    }

    /// The presence frames received so far by every joined subscriber, and their joined seconds.
    func presenceTally() throws -> PresenceTally {
        var total = PresenceTally()
        for (loop, stats) in zip(loops, stats) {
            total.add(try loop.submit { stats.value.presenceTally() }.wait())
        }
        return total
    }

    /// The numbers of the subscribers that joined and are not slow consumers: the ones whose
    /// deliveries are measured.
    func measuredSubscribers() throws -> [Int] {
        try zip(loops, stats).flatMap { loop, stats in
            try loop.submit { stats.value.subscribers.filter { $0.wasJoined && !$0.isSlow }.map(\.index) }.wait()
        }
    }

    // MARK: - Slow consumers

    /// Makes every joined slow consumer stop reading; returns how many joined.
    func stopSlowSubscribers() throws -> Int {
        try zip(loops, stats).map { loop, stats in
            try loop.submit { () -> Int in
                var count = 0
                for subscriber in stats.value.subscribers where subscriber.isSlow && subscriber.wasJoined {
                    subscriber.stopReading()
                    count += 1
                }
                return count
            }.wait()
        }.reduce(0, +)
    }

    /// Makes the slow consumers read again and waits, at most `timeout` seconds for all of them
    /// together, until each reached the end of its stream or caught up (read `expected(index)`
    /// messages); then reports how each ended.
    func probeSlowSubscribers(count: Int, timeout: Double, expected: @escaping @Sendable (Int) -> Int) throws -> SlowConsumerReport {
        for (loop, stats) in zip(loops, stats) {
            try loop.submit {
                for subscriber in stats.value.subscribers where subscriber.isSlow && subscriber.wasJoined {
                    subscriber.resumeReading(expected: expected(subscriber.index))
                }
            }.wait()
        }
        let deadline = MonotonicClock.nanoseconds() + UInt64(timeout * 1e9)
        while counters.slowSettled.load(ordering: .relaxed) < count, MonotonicClock.nanoseconds() < deadline {
            usleep(5000)
        }
        var report = SlowConsumerReport()
        for (loop, stats) in zip(loops, stats) {
            report.add(
                try loop.submit { () -> SlowConsumerReport in
                    var report = SlowConsumerReport()
                    for subscriber in stats.value.subscribers where subscriber.isSlow && subscriber.wasJoined {
                        report.subscribers += 1
                        report.received += subscriber.received
                        if !subscriber.isClosed {
                            report.stillOpen += 1
                        } else if let outcome = subscriber.slowOutcome {
                            report.outcomes[outcome, default: 0] += 1
                            if subscriber.failure != nil { report.failed += 1 } else { report.closedByServer += 1 }
                        }
                    }
                    return report
                }.wait()
            )
        }
        return report
    }

    /// Closes every subscriber connection (close frame, then the socket); waits up to 5 s.
    func closeAll() {
        let futures = zip(loops, stats).map { loop, stats in
            loop.submit { () -> Void in
                for subscriber in stats.value.subscribers { subscriber.closeForShutdown() }
            }
        }
        for future in futures { _ = try? future.wait() }
        let deadline = MonotonicClock.nanoseconds() + 5_000_000_000
        while counters.openSockets.load(ordering: .relaxed) > 0, MonotonicClock.nanoseconds() < deadline {
            usleep(10_000)
        }
    }
}
