#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension BenchCommand {
    /// Connect, hold for `duration`, report the server's memory per connection. True when every
    /// connection joined and stayed open.
    func runIdle(_ run: RunContext) throws -> Bool {
        run.header(mode: "idle")
        let before = run.serverSample()
        let connect = run.connectSubscribers()
        let joined = run.counters.joined.load(ordering: .relaxed)
        // Let the server finish what the last joins started before reading its memory.
        usleep(1_000_000)
        let connected = run.serverSample()
        let cpuBefore = ProcessStats.ownCPU()
        let holdStart = MonotonicClock.nanoseconds()
        let holdEnd = holdStart + UInt64(duration * 1e9)
        var nextProgress = holdStart + 5_000_000_000
        while MonotonicClock.nanoseconds() < holdEnd {
            usleep(10_000)
            if run.progress, MonotonicClock.nanoseconds() >= nextProgress {
                nextProgress += 5_000_000_000
                let rss = run.serverSample().map { ", server RSS \(Output.grouped($0.rssKiB)) KiB" } ?? ""
                Output.progress("idle: \(Output.grouped(run.counters.openSubscribers)) of \(Output.grouped(joined)) open\(rss)", since: holdStart)
            }
        }
        let end = run.serverSample()
        let cpuAfter = ProcessStats.ownCPU()
        let holdSeconds = Double(MonotonicClock.nanoseconds() - holdStart) / 1e9
        let snapshots = try run.pool.snapshots(expected: 0)
        let open = snapshots.reduce(0) { $0 + $1.open }
        let heartbeatsSent = snapshots.reduce(0) { $0 + $1.heartbeatsSent }
        let heartbeatReplies = snapshots.reduce(0) { $0 + $1.heartbeatReplies }
        var presence = PresenceTally()
        for snapshot in snapshots { presence.add(snapshot.presence) }
        let otherFrames = snapshots.reduce(0) { $0 + $1.otherFrames }
        let closedDuringRun = run.counters.closedAfterJoin.load(ordering: .relaxed)
        let failed = run.counters.failed.load(ordering: .relaxed)
        run.shutdown()

        func perConnection(_ sample: ProcessSample?) -> Int? {
            guard let sample, let before, joined > 0 else { return nil }
            return (sample.rssKiB - before.rssKiB) * 1024 / joined
        }
        let serverCPU = end.flatMap { end in connected.map { end.cpuSeconds - $0.cpuSeconds } }
        Output.line(
            "idle: held \(Output.grouped(joined)) joined connections for \(Output.fixed(holdSeconds, 1)) s; \(Output.grouped(open)) still open, \(closedDuringRun) closed by the server;"
                + " heartbeats \(heartbeatsSent) sent, \(heartbeatReplies) answered"
        )
        if closedDuringRun > 0 { run.printReasons() }
        if presence.frames > 0 || userIDs { Output.line(presence.line()) }
        if let serverPid, let before, let connected, let end {
            Output.line(
                "server pid \(serverPid): RSS \(Output.grouped(before.rssKiB)) KiB before connecting, \(Output.grouped(connected.rssKiB)) KiB connected, \(Output.grouped(end.rssKiB)) KiB at the end;"
                    + " \(Output.grouped(perConnection(connected) ?? 0)) bytes per connection connected, \(Output.grouped(perConnection(end) ?? 0)) at the end;"
                    + " \(Output.fixed(serverCPU ?? 0, 2)) CPU s while idle"
            )
        }
        let benchCPU = (cpuAfter.user - cpuBefore.user) + (cpuAfter.system - cpuBefore.system)
        Output.line(
            "bench: \(Output.fixed(benchCPU, 2)) CPU s while idle, \(Output.fixed(cpuAfter.user + cpuAfter.system, 2)) CPU s in all, RSS \(Output.grouped(ProcessStats.ownRSSKiB())) KiB"
        )

        var summary = SummaryLine()
        summary.add("mode", "idle")
        summary.add("protocol", wireProtocol.rawValue)
        summary.add("topic", topic)
        summary.add("subscribers", subscribers)
        summary.add("joined", joined)
        summary.add("connect_failed", failed)
        summary.add("connect_s", connect.seconds, digits: 2)
        summary.add("closed_during_run", closedDuringRun)
        summary.add("open_at_end", open)
        summary.add("duration_s", holdSeconds, digits: 1)
        summary.add("heartbeats_sent", heartbeatsSent)
        summary.add("heartbeat_replies", heartbeatReplies)
        summary.add("server_rss_kib_before", before?.rssKiB)
        summary.add("server_rss_kib_connected", connected?.rssKiB)
        summary.add("server_rss_kib_end", end?.rssKiB)
        summary.add("server_bytes_per_connection", perConnection(connected))
        summary.add("server_bytes_per_connection_end", perConnection(end))
        summary.add("server_cpu_s_idle", serverCPU)
        summary.add("bench_cpu_s", benchCPU)
        summary.add("bench_threads", run.threads)
        summary.add("user_ids", userIDs)
        summary.add("other_frames", otherFrames)
        presence.addFields(to: &summary)
        Output.line(summary.text)

        return failed == 0 && joined == subscribers && closedDuringRun == 0
    }
}
