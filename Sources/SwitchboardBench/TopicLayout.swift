/// The many-small-topics scenario (`--topic-groups G`): subscriber i joins its personal topic
/// `<base>:u<i>` and its group's topic `<base>:g<i / G>` over its one connection, and every
/// message goes to one of those topics.
///
/// Topics are numbered so one integer names one: personal topic i is number i, group j is number
/// `subscribers + j`. The publisher writes that number into each payload (`"tp"`), so a
/// subscriber checks a delivery's topic with two integer compares.
struct TopicLayout: Sendable {
    let base: String
    /// Subscribers requested (`--subscribers`): the personal topics.
    let subscribers: Int
    /// Subscribers per group (`--topic-groups`).
    let groupSize: Int
    /// Share of messages that go to a group topic (the rest go to personal topics).
    let groupShare: Double

    var groups: Int { (subscribers + groupSize - 1) / groupSize }
    var topicCount: Int { subscribers + groups }

    func personalTopic(ofSubscriber index: Int) -> Int { index }
    func groupTopic(ofSubscriber index: Int) -> Int { subscribers + index / groupSize }

    /// The topic name of topic number `topic`.
    func name(of topic: Int) -> String {
        topic < subscribers ? "\(base):u\(topic)" : "\(base):g\(topic - subscribers)"
    }

    /// Picks the topic of the next message: a group with probability `groupShare`, else a
    /// personal topic, each uniformly.
    @inline(__always)
    func pick(using random: inout SeededRandom) -> Int {
        if random.unit() < groupShare {
            return subscribers + random.below(groups)
        }
        return random.below(subscribers)
    }
}
