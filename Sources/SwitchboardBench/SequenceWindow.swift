/// Per subscriber and publisher connection: the highest `cs` seen and which of the 64 below it
/// arrived (an anti-replay window). Tells a duplicate from a late (out-of-order) arrival exactly
/// while reordering stays within 64 messages; older stragglers are counted as out of order.
struct SequenceWindow {
    private var highest = -1
    private var seen: UInt64 = 0
    /// The first sequence number recorded (-1: none), and how many distinct ones were.
    private(set) var first = -1
    private(set) var distinct = 0

    enum Verdict {
        case inOrder
        case outOfOrder
        case duplicate
    }

    @inline(__always)
    mutating func record(_ sequence: Int) -> Verdict {
        if first < 0 { first = sequence }
        if sequence > highest {
            let shift = sequence - highest
            seen = shift >= 64 ? 1 : (seen << UInt64(shift)) | 1
            highest = sequence
            distinct += 1
            return .inOrder
        }
        let back = highest - sequence
        guard back < 64 else { return .outOfOrder }
        let bit: UInt64 = 1 << UInt64(back)
        if seen & bit != 0 { return .duplicate }
        seen |= bit
        distinct += 1
        return .outOfOrder
    }
}
