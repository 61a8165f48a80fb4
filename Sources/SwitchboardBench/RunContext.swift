import NIOCore
import NIOPosix

/// What the run phases share.
struct RunContext {
    let command: BenchCommand
    let subscriberURL: BenchURL
    let threads: Int
    let counters: BenchCounters
    let group: MultiThreadedEventLoopGroup
    let publisherGroup: MultiThreadedEventLoopGroup
    let pool: SubscriberPool
    let publisherConfiguration: PublisherConfiguration

    var progress: Bool { !command.quiet }

    func serverSample() -> ProcessSample? {
        command.serverPid.flatMap { ProcessStats.sampleWithChildren(pid: $0) }
    }

    /// Opens and joins the subscribers; prints the connect line.
    func connectSubscribers() -> SubscriberPool.RampResult {
        let ramp = pool.rampUp(
            count: command.subscribers,
            rate: command.ramp,
            maxPending: command.maxPending,
            handshakeTimeout: command.connectTimeout,
            progress: progress
        )
        let joined = counters.joined.load(ordering: .relaxed)
        let failed = counters.failed.load(ordering: .relaxed)
        Output.line(
            "connect: \(Output.grouped(joined)) of \(Output.grouped(command.subscribers)) joined, \(failed) failed, in \(Output.fixed(ramp.seconds, 1)) s"
                + " (\(Output.grouped(Int(Double(joined) / max(ramp.seconds, 0.001))))/s)\(ramp.timedOut ? ", connect phase timed out" : "")"
        )
        printReasons()
        return ramp
    }

    func printReasons() {
        let reasons = counters.failureReasons
        guard !reasons.isEmpty else { return }
        for (reason, count) in reasons.sorted(by: { $0.value > $1.value }).prefix(10) {
            Output.line("  \(Output.grouped(count)) × \(reason)")
        }
    }

    /// Closes everything the run opened.
    func shutdown(publisher: NIOLoopBound<Publisher>? = nil, publisherLoop: (any EventLoop)? = nil) {
        if let publisher, let publisherLoop {
            _ = try? publisherLoop.submit { publisher.value.close() }.wait()
        }
        pool.closeAll()
    }

    func header(mode: String) {
        Output.line(
            "switchboard-bench \(mode): \(Output.grouped(command.subscribers)) subscribers (\(command.wireProtocol.rawValue)) on \(command.topic) at \(subscriberURL),"
                + " \(threads) event loop\(threads == 1 ? "" : "s"), \(pool.sources.count) source address\(pool.sources.count == 1 ? "" : "es")"
        )
    }
}
