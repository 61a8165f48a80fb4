import Histogram
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension BenchCommand {
    /// Connect, publish for `duration`, drain, report. True when nothing went wrong.
    func runFanOut(_ run: RunContext) throws -> Bool {
        run.header(mode: "fan-out")
        let layout = run.publisherConfiguration.topicLayout
        if let layout {
            Output.line(
                "topics: \(Output.grouped(layout.subscribers)) personal (\(topic):u<i>) and \(Output.grouped(layout.groups)) groups of \(layout.groupSize) (\(topic):g<i/\(layout.groupSize)>),"
                    + " \(Output.fixed(layout.groupShare * 100, 0)) % of messages to groups"
            )
        }
        let serverAtStart = run.serverSample()
        let counters = run.counters
        let publisherConfiguration = run.publisherConfiguration
        // The publisher and its connections have a thread of their own, so a burst of deliveries
        // on the subscriber loops never delays sending or reading the answers.
        let publisherLoop = run.publisherGroup.next()
        let publisher = try publisherLoop.submit {
            NIOLoopBound(Publisher(configuration: publisherConfiguration, loop: publisherLoop, counters: counters), eventLoop: publisherLoop)
        }.wait()
        func connectPublisher() throws {
            do {
                try publisherLoop.flatSubmit { publisher.value.connect() }.wait()
            } catch {
                run.shutdown(publisher: publisher, publisherLoop: publisherLoop)
                throw BenchError("publisher: cannot connect to \(publisherConfiguration.url): \(error)")
            }
        }

        // --publish-during-ramp: the publish phase (and the measured interval) starts before the
        // first subscriber connects; otherwise once every subscriber joined.
        var serverBefore: ProcessSample?
        var cpuBefore = ProcessStats.ownCPU()
        var wallBefore = MonotonicClock.nanoseconds()
        var publishing: EventLoopFuture<PublishResult>?
        if publishDuringRamp {
            try connectPublisher()
            serverBefore = run.serverSample()
            cpuBefore = ProcessStats.ownCPU()
            wallBefore = MonotonicClock.nanoseconds()
            publishing = publisherLoop.flatSubmit { publisher.value.run() }
        }
        let connect = run.connectSubscribers()
        // RSS once connected: right after the ramp while publishing, else just before publishing.
        var serverConnected = publishDuringRamp ? run.serverSample() : nil
        let rampPresence = publishDuringRamp ? try run.pool.presenceTally() : nil
        if let publishAfterRamp {
            try publisherLoop.submit { publisher.value.stop(after: publishAfterRamp) }.wait()
        }
        let joined = run.counters.joined.load(ordering: .relaxed)
        guard joined > 0 else {
            run.shutdown(publisher: publisher, publisherLoop: publisherLoop)
            throw BenchError("no subscriber joined; nothing to measure")
        }
        if !publishDuringRamp { try connectPublisher() }

        // Slow consumers stop reading now, before the first message; the others are measured.
        let slowJoined = slowFraction > 0 ? try run.pool.stopSlowSubscribers() : 0
        let measured = joined - slowJoined
        guard measured > 0 else {
            run.shutdown(publisher: publisher, publisherLoop: publisherLoop)
            throw BenchError("every joined subscriber is a slow consumer; nothing to measure")
        }

        if publishing == nil {
            serverBefore = run.serverSample()
            cpuBefore = ProcessStats.ownCPU()
            wallBefore = MonotonicClock.nanoseconds()
            publishing = publisherLoop.flatSubmit { publisher.value.run() }
            serverConnected = serverBefore
        }
        var nextProgress = wallBefore + 1_000_000_000
        var deliveriesAtLastProgress = 0
        while !counters.publishFinished.load(ordering: .relaxed) {
            usleep(5000)
            let now = MonotonicClock.nanoseconds()
            if run.progress, now >= nextProgress {
                nextProgress += 1_000_000_000
                let deliveries = counters.deliveries
                Output.progress(
                    "publish: \(Output.grouped(counters.published.load(ordering: .relaxed))) sent, \(Output.grouped(counters.publishAnswered.load(ordering: .relaxed))) answered,"
                        + " \(Output.grouped(deliveries - deliveriesAtLastProgress)) deliveries in the last second, \(Output.grouped(counters.openSubscribers)) subscribers open",
                    since: wallBefore
                )
                deliveriesAtLastProgress = deliveries
            }
        }
        let published = try publishing!.wait()

        // Drain: wait until every accepted message reached every measured subscriber (with topic
        // groups: every measured subscriber of its topic), bounded.
        var topicSizes: [Int] = []
        let expectedTotal: Int
        if let layout {
            topicSizes = Array(repeating: 0, count: layout.topicCount)
            for index in try run.pool.measuredSubscribers() {
                topicSizes[layout.personalTopic(ofSubscriber: index)] += 1
                topicSizes[layout.groupTopic(ofSubscriber: index)] += 1
            }
            expectedTotal = zip(published.topicAccepted, topicSizes).reduce(0) { $0 + $1.0 * $1.1 }
        } else if publishDuringRamp {
            // Each subscriber expects the messages from its first one on: known only from the
            // loops, so the drain waits until a second passes without a delivery.
            expectedTotal = 0
        } else {
            expectedTotal = published.accepted * measured
        }
        let drainDeadline = MonotonicClock.nanoseconds() + UInt64(drainTimeout * 1e9)
        var drained: Bool
        if publishDuringRamp {
            var last = counters.deliveries
            var quietSince = MonotonicClock.nanoseconds()
            while MonotonicClock.nanoseconds() < drainDeadline, MonotonicClock.nanoseconds() - quietSince < 1_000_000_000 {
                usleep(10_000)
                let now = counters.deliveries
                if now != last {
                    last = now
                    quietSince = MonotonicClock.nanoseconds()
                }
            }
            drained = MonotonicClock.nanoseconds() - quietSince >= 1_000_000_000
        } else {
            while counters.deliveries < expectedTotal, MonotonicClock.nanoseconds() < drainDeadline {
                usleep(2000)
            }
            drained = counters.deliveries >= expectedTotal
            if drained { usleep(200_000) }  // a moment for duplicates and stragglers to show up
        }
        let wallAfter = MonotonicClock.nanoseconds()
        let cpuAfter = ProcessStats.ownCPU()
        let serverAfter = run.serverSample()
        let snapshots = try run.pool.snapshots(
            expected: published.accepted,
            topicAccepted: layout.map { _ in published.topicAccepted },
            connectionSent: publishDuringRamp ? published.connectionSent : nil
        )
        var slow = SlowConsumerReport()
        if slowJoined > 0 {
            let accepted = published.accepted
            let topicAccepted = published.topicAccepted
            slow = try run.pool.probeSlowSubscribers(count: slowJoined, timeout: SlowConsumerReport.probeSeconds) { index in
                guard let layout else { return accepted }
                return topicAccepted[layout.personalTopic(ofSubscriber: index)] + topicAccepted[layout.groupTopic(ofSubscriber: index)]
            }
        }
        run.shutdown(publisher: publisher, publisherLoop: publisherLoop)

        // Merge the loops.
        var latency = LoopStats.makeHistogram()
        var total = LoopSnapshot(latency: LoopStats.makeHistogram(), messageDeliveries: [], messageMaxLatency: [])
        for snapshot in snapshots {
            latency.add(snapshot.latency)
            total.deliveries += snapshot.deliveries
            total.firstDelivery = min(total.firstDelivery, snapshot.firstDelivery)
            total.lastDelivery = max(total.lastDelivery, snapshot.lastDelivery)
            total.subscribers += snapshot.subscribers
            total.open += snapshot.open
            total.received += snapshot.received
            total.duplicates += snapshot.duplicates
            total.outOfOrder += snapshot.outOfOrder
            total.lost += snapshot.lost
            total.unexpected += snapshot.unexpected
            total.heartbeatsSent += snapshot.heartbeatsSent
            total.heartbeatReplies += snapshot.heartbeatReplies
            total.otherFrames += snapshot.otherFrames
            total.malformed += snapshot.malformed
            total.streamComments += snapshot.streamComments
            total.expected += snapshot.expected
            total.withoutDelivery += snapshot.withoutDelivery
            total.presence.add(snapshot.presence)
        }
        let expectedDeliveries = publishDuringRamp ? total.expected : expectedTotal
        if publishDuringRamp, !drained { drained = total.deliveries >= expectedDeliveries }
        var slowestBroadcasts: [(id: Int, completion: UInt64, deliveries: Int)] = []
        var completion = LoopStats.makeHistogram()
        var completed = 0
        var withAudience = 0  // topic groups: broadcasts whose topic has a measured subscriber
        for id in 0..<min(published.sent, LoopStats.maxTrackedMessages) {
            var count = 0
            var slowest: UInt64 = 0
            for snapshot in snapshots where id < snapshot.messageDeliveries.count {
                count += Int(snapshot.messageDeliveries[id])
                slowest = max(slowest, snapshot.messageMaxLatency[id])
            }
            if verbose { slowestBroadcasts.append((id, slowest, count)) }
            // Who should get it: every measured subscriber, or with topic groups those of its topic.
            let audience = layout != nil ? topicSizes[Int(published.messageTopics[id])] : total.subscribers
            if audience > 0 { withAudience += 1 }
            if count >= audience, count > 0 {
                completed += 1
                completion.record(min((slowest + 500) / 1000, completion.highestTrackableValue))
            }
        }

        let publishSeconds = Double(published.stoppedAt - published.startedAt) / 1e9
        let deliverySeconds = total.deliveries > 0 ? Double(total.lastDelivery - published.startedAt) / 1e9 : 0
        let deliveriesPerSecond = deliverySeconds > 0 ? Double(total.deliveries) / deliverySeconds : 0
        let phaseSeconds = Double(wallAfter - wallBefore) / 1e9
        let benchCPU = (cpuAfter.user - cpuBefore.user) + (cpuAfter.system - cpuBefore.system)
        let benchCPUTotal = cpuAfter.user + cpuAfter.system
        let serverCPU = serverAfter.flatMap { after in serverBefore.map { after.cpuSeconds - $0.cpuSeconds } }
        let closedDuringRun = counters.closedAfterJoin.load(ordering: .relaxed)
        let failed = counters.failed.load(ordering: .relaxed)
        func percentile(_ p: Double) -> UInt64 { latency.totalCount > 0 ? latency.valueAtPercentile(p) : 0 }
        func completionMS(_ p: Double) -> Double { completion.totalCount > 0 ? Double(completion.valueAtPercentile(p)) / 1000 : 0 }

        // Human report.
        let rateText = rate > 0 ? "\(Output.fixed(rate, 0)) msgs/s" : "max rate (\(publishConnections)×\(pipeline) in flight)"
        Output.line(
            "publish: \(rateText)\(messages.map { ", at most \($0) messages" } ?? ""), \(Output.fixed(publishSeconds, 2)) s to \(publisherConfiguration.url): \(Output.grouped(published.sent)) sent, \(Output.grouped(published.accepted)) accepted,"
                + " \(published.errors) errors; \(Output.fixed(Double(published.accepted) / max(publishSeconds, 0.001), 1)) msgs/s achieved"
                + (rate > 0 ? ", max backlog \(published.maxBacklog)" : "")
        )
        let answers = published.answerLatency
        func answerMS(_ p: Double) -> Double { answers.totalCount > 0 ? Double(answers.valueAtPercentile(p)) / 1000 : 0 }
        Output.line(
            "  publish request → answer (ms): p50 \(Output.fixed(answerMS(50), 2)), p99 \(Output.fixed(answerMS(99), 2)), max \(Output.fixed(Double(answers.max) / 1000, 2))"
        )
        for (kind, count) in published.errorKinds.sorted(by: { $0.value > $1.value }) {
            Output.line("  \(Output.grouped(count)) × \(kind)")
        }
        Output.line(
            "deliveries: \(Output.grouped(expectedDeliveries)) expected, \(Output.grouped(total.received)) received (\(Output.grouped(total.deliveries)) distinct) in \(Output.fixed(deliverySeconds, 2)) s"
                + " = \(Output.grouped(Int(deliveriesPerSecond)))/s\(drained ? "" : " (drain timed out after \(Output.fixed(drainTimeout, 0)) s)")"
        )
        Output.line(
            "  lost \(Output.grouped(total.lost)), duplicated \(Output.grouped(total.duplicates)), out of order \(Output.grouped(total.outOfOrder)),"
                + " unexpected \(Output.grouped(total.unexpected)); subscribers closed during the run \(closedDuringRun)"
                + (total.otherFrames + total.malformed > 0 ? "; \(total.otherFrames) other frames, \(total.malformed) malformed" : "")
                + (publishDuringRamp ? "; \(Output.grouped(total.withoutDelivery)) subscribers received no message" : "")
        )
        if total.presence.frames > 0 || userIDs {
            Output.line(total.presence.line())
        }
        if let rampPresence {
            Output.line(
                "  while the ramp ran (\(Output.fixed(connect.seconds, 1)) s): \(Output.grouped(rampPresence.diffs)) presence_diff,"
                    + " \(Output.fixed(rampPresence.diffsPerSubscriberSecond, 2)) per subscriber-second"
            )
        }
        if closedDuringRun > 0 { run.printReasons() }
        if slowFraction > 0 {
            let outcomes = slow.outcomes.sorted { $0.value > $1.value }.map { "\(Output.grouped($0.value)) × \($0.key)" }
            Output.line(
                "slow consumers: \(Output.grouped(slow.subscribers)) of \(Output.grouped(joined)) joined subscribers stopped reading when publishing started;"
                    + " after the drain, reading again for at most \(Output.fixed(SlowConsumerReport.probeSeconds, 0)) s: \(Output.grouped(slow.closedByServer)) had been closed by the server"
                    + (outcomes.isEmpty ? "" : " (\(outcomes.joined(separator: ", ")))") + ", \(Output.grouped(slow.stillOpen)) still open"
                    + (slow.failed > 0 ? ", \(slow.failed) closed by the bench" : "")
                    + "; \(Output.grouped(slow.received)) messages read by them in all"
            )
        }
        if verbose {
            for (index, snapshot) in snapshots.enumerated() {
                Output.line(
                    "  event loop \(index): \(Output.grouped(snapshot.subscribers)) subscribers, \(Output.grouped(snapshot.deliveries)) deliveries,"
                        + " latency p50 \(Output.grouped(Int(snapshot.latency.valueAtPercentile(50)))) µs, p99 \(Output.grouped(Int(snapshot.latency.valueAtPercentile(99)))) µs, max \(Output.grouped(Int(snapshot.latency.max))) µs"
                )
            }
            for broadcast in slowestBroadcasts.sorted(by: { $0.completion > $1.completion }).prefix(5) {
                Output.line(
                    "  slow broadcast seq \(broadcast.id): last of \(Output.grouped(broadcast.deliveries)) deliveries after \(Output.fixed(Double(broadcast.completion) / 1e6, 2)) ms"
                )
            }
        }
        Output.line(
            "latency per delivery (µs): p50 \(Output.grouped(Int(percentile(50)))), p90 \(Output.grouped(Int(percentile(90)))), p99 \(Output.grouped(Int(percentile(99)))),"
                + " p99.9 \(Output.grouped(Int(percentile(99.9)))), max \(Output.grouped(Int(latency.max)))"
        )
        Output.line(
            "broadcast completion, publish → last subscriber (ms): p50 \(Output.fixed(completionMS(50), 2)), p99 \(Output.fixed(completionMS(99), 2)),"
                + " max \(Output.fixed(Double(completion.max) / 1000, 2)) \(layout == nil ? "(\(Output.grouped(completed)) of \(Output.grouped(published.accepted)) broadcasts reached every subscriber)" : "(\(Output.grouped(completed)) of \(Output.grouped(withAudience)) broadcasts to a topic with measured subscribers reached all of them)")"
        )
        if let serverPid, let serverCPU, let serverAfter {
            Output.line(
                "server pid \(serverPid): \(Output.fixed(serverCPU, 2)) CPU s over \(Output.fixed(phaseSeconds, 2)) s (\(Output.fixed(serverCPU / phaseSeconds * 100, 0)) % of a core),"
                    + " \(Output.fixed(total.deliveries > 0 ? serverCPU * 1e6 / Double(total.deliveries) : 0, 2)) µs per delivery;"
                    + " RSS \(Output.grouped(serverAtStart?.rssKiB ?? 0)) KiB before connecting, \(Output.grouped(serverConnected?.rssKiB ?? 0)) KiB connected, \(Output.grouped(serverAfter.rssKiB)) KiB at the end"
            )
        }
        Output.line(
            "bench: \(Output.fixed(benchCPU, 2)) CPU s over the same \(Output.fixed(phaseSeconds, 2)) s (\(Output.fixed(benchCPU / phaseSeconds * 100, 0)) % of a core, \(threadsLabel(run))),"
                + " \(Output.fixed(benchCPUTotal, 2)) CPU s in all (user \(Output.fixed(cpuAfter.user, 2)), system \(Output.fixed(cpuAfter.system, 2))), RSS \(Output.grouped(ProcessStats.ownRSSKiB())) KiB"
        )
        if benchCPU / phaseSeconds > 0.85 * Double(run.threads) {
            Output.line(
                "  warning: the bench used \(Output.fixed(benchCPU / phaseSeconds * 100, 0)) % of its \(run.threads) core(s); it may be the bottleneck"
            )
        }

        var summary = SummaryLine()
        summary.add("mode", "fanout")
        summary.add("protocol", wireProtocol.rawValue)
        summary.add("topic", topic)
        summary.add("subscribers", subscribers)
        summary.add("joined", joined)
        summary.add("connect_failed", failed)
        summary.add("connect_s", connect.seconds, digits: 2)
        summary.add("closed_during_run", closedDuringRun)
        summary.add("rate_target", rate, digits: 1)
        summary.add("duration_s", duration, digits: 1)
        summary.add("message_limit", messages)
        summary.add("publish_s", publishSeconds)
        summary.add("payload_size", payloadSize)
        summary.add("published", published.sent)
        summary.add("accepted", published.accepted)
        summary.add("publish_errors", published.errors)
        summary.add("publish_rate", Double(published.accepted) / max(publishSeconds, 0.001), digits: 1)
        summary.add("max_backlog", published.maxBacklog)
        summary.add("publish_answer_ms_p50", answerMS(50))
        summary.add("publish_answer_ms_p99", answerMS(99))
        summary.add("publish_answer_ms_max", Double(answers.max) / 1000)
        summary.add("expected_deliveries", expectedDeliveries)
        summary.add("received", total.received)
        summary.add("deliveries", total.deliveries)
        summary.add("deliveries_per_s", deliveriesPerSecond, digits: 0)
        summary.add("lost", total.lost)
        summary.add("duplicated", total.duplicates)
        summary.add("out_of_order", total.outOfOrder)
        summary.add("unexpected", total.unexpected)
        if wireProtocol == .sse { summary.add("sse_comments", total.streamComments) }
        summary.add("drained", drained)
        summary.add("latency_us_p50", Int(percentile(50)))
        summary.add("latency_us_p90", Int(percentile(90)))
        summary.add("latency_us_p99", Int(percentile(99)))
        summary.add("latency_us_p999", Int(percentile(99.9)))
        summary.add("latency_us_max", Int(latency.max))
        summary.add("completion_ms_p50", completionMS(50))
        summary.add("completion_ms_p99", completionMS(99))
        summary.add("completion_ms_max", Double(completion.max) / 1000)
        summary.add("broadcasts_complete", completed)
        summary.add("server_cpu_s", serverCPU)
        summary.add("server_cpu_pct", serverCPU.map { $0 / phaseSeconds * 100 }, digits: 1)
        summary.add("server_us_per_delivery", serverCPU.flatMap { total.deliveries > 0 ? $0 * 1e6 / Double(total.deliveries) : nil }, digits: 2)
        summary.add("server_rss_kib_start", serverAtStart?.rssKiB)
        summary.add("server_rss_kib_connected", serverConnected?.rssKiB)
        summary.add("server_rss_kib_end", serverAfter?.rssKiB)
        summary.add("bench_cpu_s", benchCPU)
        summary.add("bench_cpu_pct", benchCPU / phaseSeconds * 100, digits: 1)
        summary.add("bench_threads", run.threads)
        summary.add("phase_s", phaseSeconds)
        summary.add("topics", layout?.topicCount ?? 1)
        summary.add("topic_groups", topicGroups)
        summary.add("group_share", layout != nil ? groupShare : 0, digits: 2)
        summary.add("slow_fraction", slowFraction, digits: 4)
        summary.add("slow_subscribers", slow.subscribers)
        summary.add("slow_closed_by_server", slow.closedByServer)
        summary.add("slow_still_open", slow.stillOpen)
        summary.add("user_ids", userIDs)
        summary.add("publish_during_ramp", publishDuringRamp)
        summary.add("ramp_target", ramp, digits: 1)
        summary.add("publish_after_ramp_s", publishAfterRamp)
        summary.add("subscribers_without_delivery", publishDuringRamp ? total.withoutDelivery : nil)
        summary.add("other_frames", total.otherFrames)
        total.presence.addFields(to: &summary)
        summary.add("presence_diffs_per_sub_s_ramp", rampPresence?.diffsPerSubscriberSecond, digits: 3)
        summary.add("presence_diffs_ramp", rampPresence?.diffs)
        Output.line(summary.text)

        return failed == 0 && joined == subscribers && closedDuringRun == 0 && published.errors == 0 && published.accepted > 0
            && total.lost == 0 && total.duplicates == 0 && total.outOfOrder == 0 && total.unexpected == 0 && drained
    }

    func threadsLabel(_ run: RunContext) -> String {
        "\(run.threads) event loop\(run.threads == 1 ? "" : "s")"
    }
}
