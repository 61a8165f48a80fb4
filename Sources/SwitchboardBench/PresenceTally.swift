/// Presence frames received: Phoenix's `presence_state` (the member list after a join),
/// `presence_diff` (joins and leaves) and Switchboard's count-only `presence_count`; neither
/// deliveries nor errors. Per subscriber, summed per loop and for the run.
struct PresenceTally: Sendable {
    var states = 0
    var diffs = 0
    var counts = 0
    var stateBytes = 0
    var diffBytes = 0
    var countBytes = 0
    /// The most `presence_diff` one subscriber received within one clock second.
    var maxDiffsPerSecond = 0
    /// Joined subscribers counted, and the seconds they were joined in all (for diffs per
    /// subscriber-second).
    var subscribers = 0
    var subscriberSeconds = 0.0

    var frames: Int { states + diffs + counts }
    var bytes: Int { stateBytes + diffBytes + countBytes }
    /// `presence_diff` frames per second of a joined subscriber (0 when none was joined).
    var diffsPerSubscriberSecond: Double { subscriberSeconds > 0 ? Double(diffs) / subscriberSeconds : 0 }

    mutating func add(_ other: PresenceTally) {
        states += other.states
        diffs += other.diffs
        counts += other.counts
        stateBytes += other.stateBytes
        diffBytes += other.diffBytes
        countBytes += other.countBytes
        maxDiffsPerSecond = max(maxDiffsPerSecond, other.maxDiffsPerSecond)
        subscribers += other.subscribers
        subscriberSeconds += other.subscriberSeconds
    }

    /// The human report's line.
    func line() -> String {
        func mib(_ bytes: Int) -> String { Output.fixed(Double(bytes) / 1_048_576, 1) + " MiB" }
        return "presence: \(Output.grouped(states)) presence_state (\(mib(stateBytes))), \(Output.grouped(diffs)) presence_diff (\(mib(diffBytes))),"
            + " \(Output.grouped(counts)) presence_count (\(mib(countBytes))); \(Output.fixed(diffsPerSubscriberSecond, 2)) diffs per subscriber-second,"
            + " at most \(maxDiffsPerSecond) in one second to one subscriber"
    }

    /// The SUMMARY fields.
    func addFields(to summary: inout SummaryLine) {
        summary.add("presence_states", states)
        summary.add("presence_diffs", diffs)
        summary.add("presence_counts", counts)
        summary.add("presence_state_bytes", stateBytes)
        summary.add("presence_diff_bytes", diffBytes)
        summary.add("presence_count_bytes", countBytes)
        summary.add("presence_diffs_per_sub_s", diffsPerSubscriberSecond, digits: 3)
        summary.add("presence_diffs_max_per_sub_s", maxDiffsPerSecond)
    }
}
