import Dispatch
import NIOCore
import Synchronization
import Testing

@testable import Switchboard

// MARK: Test doubles

/// What the test loops share: timers are not supported (the hub never schedules any), and shutdown
/// is immediate.
protocol TestEventLoop: EventLoop {}

struct UnsupportedError: Error {}

extension TestEventLoop {
    func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let promise = makePromise(of: T.self)
        promise.fail(UnsupportedError())
        return Scheduled(promise: promise, cancellationTask: {})
    }

    func scheduleTask<T>(in: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        scheduleTask(deadline: .now() + `in`, task)
    }

    func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        queue.async { callback(nil) }
    }
}

/// An event loop that runs every task at once on the calling thread and counts `execute` calls.
/// (The test target depends on Switchboard only, so neither NIOEmbedded nor NIOPosix is available.)
final class InlineEventLoop: TestEventLoop, CustomStringConvertible {
    let name: String
    private let executeCalls = Atomic<Int>(0)

    init(_ name: String = "inline") { self.name = name }

    var description: String { "InlineEventLoop(\(name))" }

    /// How many tasks were handed to this loop.
    var executeCount: Int { executeCalls.load(ordering: .relaxed) }

    var inEventLoop: Bool { true }

    func execute(_ task: @escaping @Sendable () -> Void) {
        executeCalls.wrappingAdd(1, ordering: .relaxed)
        task()
    }
}

/// An event loop whose tasks wait in a queue until the test runs them (in order, including tasks
/// queued while running), like a real loop busy with other work.
final class ManualEventLoop: TestEventLoop, CustomStringConvertible {
    private let queue = Mutex<[@Sendable () -> Void]>([])
    private let ran = Atomic<Int>(0)

    var description: String { "ManualEventLoop" }
    var inEventLoop: Bool { true }
    /// Tasks waiting.
    var pending: Int { queue.withLock { $0.count } }
    /// Tasks run so far.
    var executed: Int { ran.load(ordering: .relaxed) }

    func execute(_ task: @escaping @Sendable () -> Void) {
        queue.withLock { $0.append(task) }
    }

    /// Runs tasks until none is left.
    func runAll() {
        while let task = queue.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
            ran.wrappingAdd(1, ordering: .relaxed)
            task()
        }
    }
}

/// One thing a subscriber saw, in order.
enum SubscriberEvent: Equatable, Sendable {
    /// A broadcast: its topic, event, JSON payload (if any) and the frame bytes (nil if no frame).
    case receive(subscriber: String, topic: String, event: String, frame: [UInt8]?)
    case flush(subscriber: String)
}

/// An ordered log shared by several subscribers.
final class EventLog: Sendable {
    private let events = Mutex<[SubscriberEvent]>([])
    func append(_ e: SubscriberEvent) { events.withLock { $0.append(e) } }
    var all: [SubscriberEvent] { events.withLock { $0 } }
}

final class TestSubscriber: Subscriber {
    let name: String
    let id: SubscriberID
    let eventLoop: any EventLoop
    let frameFormat: FrameFormat?
    let connection: Connection
    let log: EventLog
    private let received = Mutex<[(Broadcast, ByteBuffer?)]>([])
    private let flushes = Atomic<Int>(0)

    init(_ name: String, hub: Hub, loop: any EventLoop, format: FrameFormat? = nil, connection: Connection? = nil, log: EventLog = EventLog()) {
        self.name = name
        self.id = SubscriberID.next(node: hub.nodeID)
        self.eventLoop = loop
        self.frameFormat = format
        self.connection = connection ?? makeConnection()
        self.log = log
    }

    func receive(_ broadcast: Broadcast, frame: ByteBuffer?) {
        received.withLock { $0.append((broadcast, frame)) }
        log.append(.receive(subscriber: name, topic: broadcast.topic, event: broadcast.event, frame: frame?.readableArray))
    }

    func flushBatch() {
        flushes.wrappingAdd(1, ordering: .relaxed)
        log.append(.flush(subscriber: name))
    }

    var broadcasts: [Broadcast] { received.withLock { $0.map(\.0) } }
    var frames: [ByteBuffer?] { received.withLock { $0.map(\.1) } }
    var receiveCount: Int { received.withLock { $0.count } }
    var flushCount: Int { flushes.load(ordering: .relaxed) }
}

func makeConnection(socketID: String? = nil) -> Connection {
    Connection(socketID: socketID, assigns: Assigns(), transport: "test", close: { _ in })
}

/// A broker that delivers locally like `MemoryBroker` and records every call.
final class RecordingBroker: Broker {
    enum Call: Equatable, Sendable {
        case occupied(String)
        case vacated(String)
        case published(topic: String, event: String)
    }

    private let sink = Mutex<(@Sendable (Broadcast) -> Void)?>(nil)
    private let log = Mutex<[Call]>([])
    private let attaches = Atomic<Int>(0)

    var calls: [Call] { log.withLock { $0 } }
    var attachCount: Int { attaches.load(ordering: .relaxed) }
    var occupied: [String] {
        calls.compactMap { call -> String? in
            guard case .occupied(let t) = call else { return nil }
            return t
        }
    }
    var vacated: [String] {
        calls.compactMap { call -> String? in
            guard case .vacated(let t) = call else { return nil }
            return t
        }
    }

    func attach(_ deliver: @escaping @Sendable (Broadcast) -> Void) {
        attaches.wrappingAdd(1, ordering: .relaxed)
        sink.withLock { $0 = deliver }
    }

    func publish(_ broadcast: Broadcast) {
        log.withLock { $0.append(.published(topic: broadcast.topic, event: broadcast.event)) }
        let deliver = sink.withLock { $0 }
        deliver?(broadcast)
    }

    func topicOccupied(_ topic: String) { log.withLock { $0.append(.occupied(topic)) } }
    func topicVacated(_ topic: String) { log.withLock { $0.append(.vacated(topic)) } }
}

/// A frame format whose encoder counts its calls and produces `"<name>|<topic>|<event>"`.
final class CountingFormat: Sendable {
    let format: FrameFormat
    let name: String
    let counter: CallCounter

    init(_ name: String, encodes: Bool = true) {
        self.name = name
        let counter = CallCounter()
        self.counter = counter
        format = FrameFormat(name: name) { broadcast in
            counter.increment()
            guard encodes else { return nil }
            return ByteBuffer(string: "\(name)|\(broadcast.topic)|\(broadcast.event)")
        }
    }

    /// How many times the encoder ran.
    var count: Int { counter.value }

    func expectedFrame(topic: String, event: String) -> [UInt8] { utf8("\(name)|\(topic)|\(event)") }
}

final class CallCounter: Sendable {
    private let n = Atomic<Int>(0)
    func increment() { n.wrappingAdd(1, ordering: .relaxed) }
    var value: Int { n.load(ordering: .relaxed) }
}

// MARK: Tests

@Suite("Hub")
struct HubTests {
    let broker = RecordingBroker()
    let hub: Hub
    let loop = InlineEventLoop("A")
    let loopB = InlineEventLoop("B")

    init() {
        hub = Hub(nodeID: "node-1", broker: broker, shardCount: 4)
    }

    func sub(
        _ name: String,
        on loop: (any EventLoop)? = nil,
        format: FrameFormat? = nil,
        connection: Connection? = nil,
        log: EventLog = EventLog()
    )
        -> TestSubscriber
    {
        TestSubscriber(name, hub: hub, loop: loop ?? self.loop, format: format, connection: connection, log: log)
    }

    // MARK: Registry

    @Test func initAttachesToBrokerOnce() {
        #expect(broker.attachCount == 1)
        #expect(hub.nodeID == "node-1")
    }

    @Test func subscribeAndUnsubscribeCounts() {
        let a1 = sub("a1")
        let a2 = sub("a2", on: loopB)
        let b1 = sub("b1")
        #expect(hub.localTopics() == [:])

        hub.subscribe(a1, to: "a")
        hub.subscribe(a2, to: "a")
        hub.subscribe(b1, to: "b")
        hub.subscribe(a1, to: "b")
        #expect(hub.localSubscriberCount(topic: "a") == 2)
        #expect(hub.localSubscriberCount(topic: "b") == 2)
        #expect(hub.localSubscriberCount(topic: "c") == 0)
        #expect(hub.localTopics() == ["a": 2, "b": 2])

        hub.unsubscribe(a1, from: "a")
        #expect(hub.localSubscriberCount(topic: "a") == 1)
        #expect(hub.localTopics() == ["a": 1, "b": 2])

        hub.unsubscribe(a2, from: "a")
        #expect(hub.localSubscriberCount(topic: "a") == 0)
        #expect(hub.localTopics() == ["b": 2], "an empty topic is removed")

        hub.unsubscribe(b1, from: "b")
        hub.unsubscribe(a1, from: "b")
        #expect(hub.localTopics() == [:])
    }

    @Test func subscribeIsIdempotent() {
        let s = sub("s")
        hub.subscribe(s, to: "t")
        hub.subscribe(s, to: "t")
        hub.subscribe(s, to: "t")
        #expect(hub.localSubscriberCount(topic: "t") == 1)
        #expect(hub.localTopics() == ["t": 1])

        hub.broadcast(topic: "t", event: "e", payload: .emptyObject)
        #expect(s.receiveCount == 1)
        #expect(s.flushCount == 1)

        // One unsubscribe undoes any number of subscribes.
        hub.unsubscribe(s, from: "t")
        #expect(hub.localSubscriberCount(topic: "t") == 0)
        #expect(hub.localTopics() == [:])
    }

    @Test func unsubscribeIsIdempotentAndIgnoresStrangers() {
        let s = sub("s")
        let stranger = sub("stranger")
        let strangerOtherLoop = sub("stranger2", on: loopB)
        hub.unsubscribe(s, from: "nowhere")
        hub.subscribe(s, to: "t")
        hub.unsubscribe(stranger, from: "t")
        hub.unsubscribe(strangerOtherLoop, from: "t")
        #expect(hub.localSubscriberCount(topic: "t") == 1)
        hub.unsubscribe(s, from: "t")
        hub.unsubscribe(s, from: "t")
        #expect(hub.localSubscriberCount(topic: "t") == 0)
        #expect(broker.occupied == ["t"])
        #expect(broker.vacated == ["t"])
    }

    @Test func localTopicsSpansAllShards() {
        let s = sub("s")
        var expected: [String: Int] = [:]
        for i in 0..<100 {
            hub.subscribe(s, to: "topic:\(i)")
            expected["topic:\(i)"] = 1
        }
        #expect(hub.localTopics() == expected)
        for i in 0..<100 { #expect(hub.localSubscriberCount(topic: "topic:\(i)") == 1) }
    }

    @Test func singleShardHub() {
        let hub = Hub(nodeID: "n", broker: MemoryBroker(), shardCount: 0)
        #expect(hub.shards.count == 1)
        let s = TestSubscriber("s", hub: hub, loop: loop)
        hub.subscribe(s, to: "x")
        hub.subscribe(s, to: "y")
        #expect(hub.localTopics() == ["x": 1, "y": 1])
        hub.broadcast(topic: "y", event: "e", payload: .emptyObject)
        #expect(s.broadcasts.map(\.topic) == ["y"])
    }

    // MARK: Broker notifications

    @Test func brokerIsToldOnlyOnFirstAndLastSubscriber() {
        let s1 = sub("s1")
        let s2 = sub("s2", on: loopB)

        hub.subscribe(s1, to: "t")
        #expect(broker.calls == [.occupied("t")])
        hub.subscribe(s2, to: "t")
        hub.subscribe(s1, to: "t")
        #expect(broker.calls == [.occupied("t")], "only the 0→1 transition is reported")

        hub.unsubscribe(s1, from: "t")
        #expect(broker.calls == [.occupied("t")], "1 subscriber left: not vacated")
        hub.unsubscribe(s1, from: "t")
        #expect(broker.calls == [.occupied("t")])
        hub.unsubscribe(s2, from: "t")
        #expect(broker.calls == [.occupied("t"), .vacated("t")])
        hub.unsubscribe(s2, from: "t")
        #expect(broker.calls == [.occupied("t"), .vacated("t")], "no second vacated")

        hub.subscribe(s2, to: "t")
        #expect(broker.calls == [.occupied("t"), .vacated("t"), .occupied("t")])

        hub.subscribe(s1, to: "u")
        hub.unsubscribe(s1, from: "u")
        #expect(broker.calls == [.occupied("t"), .vacated("t"), .occupied("t"), .occupied("u"), .vacated("u")])
    }

    @Test func broadcastGoesThroughTheBroker() {
        let s = sub("s")
        hub.subscribe(s, to: "t")
        hub.broadcast(topic: "t", event: "e1", payload: .json(.object(["k": .int(1)])))
        hub.publish(Broadcast(topic: "t", event: "e2", payload: .json(.emptyObject)))
        hub.broadcast(topic: "nobody", event: "e3", payload: .json(.emptyObject))
        #expect(
            broker.calls == [
                .occupied("t"), .published(topic: "t", event: "e1"), .published(topic: "t", event: "e2"),
                .published(topic: "nobody", event: "e3"),
            ]
        )
        #expect(s.broadcasts.map(\.event) == ["e1", "e2"])
        #expect(s.broadcasts.first?.payload == .json(.object(["k": .int(1)])))
    }

    // MARK: Fan-out

    @Test func broadcastReachesEverySubscriberOfTheTopicOnly() {
        let a1 = sub("a1")
        let a2 = sub("a2")
        let a3 = sub("a3", on: loopB)
        let b1 = sub("b1")
        let idle = sub("idle")
        hub.subscribe(a1, to: "a")
        hub.subscribe(a2, to: "a")
        hub.subscribe(a3, to: "a")
        hub.subscribe(b1, to: "b")
        hub.subscribe(idle, to: "c")

        hub.broadcast(topic: "a", event: "ev", payload: .json(.object(["n": .int(1)])))
        for s in [a1, a2, a3] {
            #expect(s.receiveCount == 1, "\(s.name)")
            #expect(s.broadcasts.first?.topic == "a")
            #expect(s.broadcasts.first?.event == "ev")
            #expect(s.broadcasts.first?.payload == .json(.object(["n": .int(1)])))
            #expect(s.broadcasts.first?.excluding == nil)
        }
        #expect(b1.receiveCount == 0)
        #expect(idle.receiveCount == 0)
        #expect(b1.flushCount == 0)

        hub.broadcast(topic: "b", event: "ev2", payload: .binary(ByteBuffer(bytes: [1, 2])))
        #expect(b1.broadcasts.map(\.event) == ["ev2"])
        #expect(b1.broadcasts.first?.payload == .binary(ByteBuffer(bytes: [1, 2])))
        #expect(a1.receiveCount == 1)

        hub.broadcast(topic: "unknown", event: "ev3", payload: .emptyObject)
        #expect([a1, a2, a3, b1, idle].map(\.receiveCount) == [1, 1, 1, 1, 0])
    }

    @Test func unsubscribedSubscriberReceivesNothing() {
        let s1 = sub("s1")
        let s2 = sub("s2")
        hub.subscribe(s1, to: "t")
        hub.subscribe(s2, to: "t")
        hub.unsubscribe(s1, from: "t")
        hub.broadcast(topic: "t", event: "e", payload: .emptyObject)
        #expect(s1.receiveCount == 0)
        #expect(s1.flushCount == 0)
        #expect(s2.receiveCount == 1)
    }

    @Test func excludingSkipsExactlyThatSubscriber() {
        let log = EventLog()
        let s1 = sub("s1", log: log)
        let s2 = sub("s2", log: log)
        let s3 = sub("s3", on: loopB, log: log)
        for s in [s1, s2, s3] { hub.subscribe(s, to: "t") }

        hub.publish(Broadcast(topic: "t", event: "from", payload: .json(.emptyObject), excluding: s2.id))
        #expect(s1.receiveCount == 1)
        #expect(s2.receiveCount == 0)
        #expect(s3.receiveCount == 1)
        #expect(s1.broadcasts.first?.excluding == s2.id)

        // An id with the same local number but another node is a different subscriber.
        hub.publish(
            Broadcast(topic: "t", event: "other-node", payload: .json(.emptyObject), excluding: SubscriberID(node: "node-2", local: s1.id.local))
        )
        #expect(s1.receiveCount == 2)
        #expect(s2.receiveCount == 1)
        #expect(s3.receiveCount == 2)

        // Excluding a subscriber that is not on the topic excludes nobody.
        let stranger = sub("stranger")
        hub.publish(Broadcast(topic: "t", event: "stranger", payload: .json(.emptyObject), excluding: stranger.id))
        #expect([s1, s2, s3].map(\.receiveCount) == [3, 2, 3])
    }

    @Test func subscriberIDsAreUnique() {
        let ids = (0..<50).map { _ in SubscriberID.next(node: "n") }
        #expect(Set(ids).count == 50)
        #expect(SubscriberID(node: "n", local: 5).description == "n/5")
    }

    // MARK: Encoding per frame format

    @Test func everySubscriberGetsTheFrameOfItsFormatEncodedOncePerFormat() {
        let fa = CountingFormat("A")
        let fb = CountingFormat("B")
        let unused = CountingFormat("unused")
        let a1 = sub("a1", format: fa.format)
        let a2 = sub("a2", on: loopB, format: fa.format)
        let a3 = sub("a3", format: fa.format)
        let b1 = sub("b1", on: loopB, format: fb.format)
        let raw = sub("raw", format: nil)
        let elsewhere = sub("elsewhere", format: unused.format)
        for s in [a1, a2, a3, b1, raw] { hub.subscribe(s, to: "t") }
        hub.subscribe(elsewhere, to: "other")

        hub.broadcast(topic: "t", event: "e1", payload: .emptyObject)
        #expect(fa.count == 1, "one encoding per format per broadcast, whatever the number of subscribers or loops")
        #expect(fb.count == 1)
        #expect(unused.count == 0, "formats of other topics are not encoded")
        for s in [a1, a2, a3] {
            #expect(s.frames.map { $0?.readableArray } == [fa.expectedFrame(topic: "t", event: "e1")], "\(s.name)")
        }
        #expect(b1.frames.map { $0?.readableArray } == [fb.expectedFrame(topic: "t", event: "e1")])
        #expect(raw.receiveCount == 1)
        #expect(raw.frames.count == 1)
        #expect(raw.frames.first! == nil, "a subscriber without a format gets no frame")

        hub.broadcast(topic: "t", event: "e2", payload: .emptyObject)
        hub.broadcast(topic: "t", event: "e3", payload: .emptyObject)
        #expect(fa.count == 3)
        #expect(fb.count == 3)
        #expect(a2.frames.map { $0?.readableArray } == ["e1", "e2", "e3"].map { fa.expectedFrame(topic: "t", event: $0) })

        // Once the only B subscriber leaves, B is no longer encoded.
        hub.unsubscribe(b1, from: "t")
        hub.broadcast(topic: "t", event: "e4", payload: .emptyObject)
        #expect(fa.count == 4)
        #expect(fb.count == 3)

        // Removing some (not all) A subscribers keeps A.
        hub.unsubscribe(a1, from: "t")
        hub.unsubscribe(a2, from: "t")
        hub.broadcast(topic: "t", event: "e5", payload: .emptyObject)
        #expect(fa.count == 5)
        #expect(a3.frames.last??.readableArray == fa.expectedFrame(topic: "t", event: "e5"))

        // An idempotent re-subscribe does not double-count the format.
        hub.subscribe(a3, to: "t")
        hub.unsubscribe(a3, from: "t")
        hub.broadcast(topic: "t", event: "e6", payload: .emptyObject)
        #expect(fa.count == 5, "A has no subscriber left on t")
        #expect(raw.receiveCount == 6)
    }

    @Test func formatThatCannotEncodeDeliversNilFrame() {
        let none = CountingFormat("none", encodes: false)
        let s = sub("s", format: none.format)
        hub.subscribe(s, to: "t")
        hub.broadcast(topic: "t", event: "e", payload: .emptyObject)
        #expect(none.count == 1)
        #expect(s.receiveCount == 1, "receive is still called, with a nil frame")
        #expect(s.frames.first! == nil)
        #expect(s.flushCount == 1)
    }

    @Test func phoenixFormatsDeliverCompleteWebSocketFrames() {
        let v1 = sub("v1", format: .phoenixV1WebSocket)
        let v2 = sub("v2", on: loopB, format: .phoenixV2WebSocket)
        hub.subscribe(v1, to: "room:1")
        hub.subscribe(v2, to: "room:1")

        hub.broadcast(topic: "room:1", event: "ev", payload: .json(.object(["a": .int(1)])))
        let v1Body = utf8(#"{"topic":"room:1","event":"ev","payload":{"a":1},"ref":null}"#)
        let v2Body = utf8(#"[null,null,"room:1","ev",{"a":1}]"#)
        #expect(v1.frames.last??.readableArray == [0x81, UInt8(v1Body.count)] + v1Body)
        #expect(v2.frames.last??.readableArray == [0x81, UInt8(v2Body.count)] + v2Body)

        hub.broadcast(topic: "room:1", event: "tick", payload: .binary(ByteBuffer(bytes: [0xCC])))
        #expect(v1.receiveCount == 2)
        #expect(v1.frames.last! == nil, "binary payloads are not framed for V1")
        #expect(v2.frames.last??.readableArray == hexBytes("82 0e 02 06 04 72 6f 6f 6d 3a 31 74 69 63 6b cc"))
    }

    // MARK: Batching

    @Test func aLoneBroadcastFlushesEachSubscriberRightAfterWritingToIt() throws {
        let log = EventLog()
        let s1 = sub("s1", log: log)
        let s2 = sub("s2", log: log)
        let s3 = sub("s3", on: loopB, log: log)
        for s in [s1, s2, s3] { hub.subscribe(s, to: "t") }
        let before = (loop.executeCount, loopB.executeCount)

        hub.broadcast(topic: "t", event: "e", payload: .emptyObject)
        #expect([s1, s2, s3].map(\.flushCount) == [1, 1, 1])
        // One hop per event loop per broadcast and no flush task: an inline loop runs each task at
        // once, so every broadcast is alone on its loop and flushes as it writes (one pass).
        #expect(loop.executeCount - before.0 == 1, "one hop per event loop per broadcast, no flush task")
        #expect(loopB.executeCount - before.1 == 1)

        // On each loop: each subscriber's write, then its flush.
        let events = log.all
        let onA = events.filter { e in
            switch e {
            case .receive(let n, _, _, _), .flush(let n): return n != "s3"
            }
        }
        #expect(
            onA == [
                .receive(subscriber: "s1", topic: "t", event: "e", frame: nil), .flush(subscriber: "s1"),
                .receive(subscriber: "s2", topic: "t", event: "e", frame: nil), .flush(subscriber: "s2"),
            ]
        )
        #expect(events.filter { $0 == .flush(subscriber: "s3") }.count == 1)
        let s3Receive = try #require(events.firstIndex(of: .receive(subscriber: "s3", topic: "t", event: "e", frame: nil)))
        let s3Flush = try #require(events.firstIndex(of: .flush(subscriber: "s3")))
        #expect(s3Receive < s3Flush)

        for i in 0..<4 { hub.broadcast(topic: "t", event: "e\(i)", payload: .emptyObject) }
        #expect([s1, s2, s3].map(\.flushCount) == [5, 5, 5])
        #expect([s1, s2, s3].map(\.receiveCount) == [5, 5, 5])
        #expect(loop.executeCount - before.0 == 5)
        #expect(loopB.executeCount - before.1 == 5)
    }

    @Test func aBurstOfBroadcastsIsFlushedOnceAfterAllItsWrites() {
        let manual = ManualEventLoop()
        let log = EventLog()
        let s1 = sub("s1", on: manual, log: log)
        let s2 = sub("s2", on: manual, log: log)
        for s in [s1, s2] { hub.subscribe(s, to: "burst") }
        for i in 0..<3 { hub.broadcast(topic: "burst", event: "e\(i)", payload: .emptyObject) }
        #expect(manual.pending == 3, "one task per broadcast, nothing run yet")
        manual.runAll()
        #expect(manual.executed == 4, "three deliveries, then one flush task for the burst")
        let events = log.all
        let firstFlush = events.firstIndex { if case .flush = $0 { return true } else { return false } }
        let lastReceive = events.lastIndex { if case .receive = $0 { return true } else { return false } }
        #expect([s1, s2].map(\.receiveCount) == [3, 3])
        #expect(firstFlush != nil && lastReceive != nil && lastReceive! < firstFlush!, "every write of the burst before its flush")
        #expect(
            [s1, s2].map(\.flushCount) == [3, 3],
            "the flush task asks each connection once per broadcast of the burst (only the first finds bytes to flush)"
        )
        // A later broadcast alone on the loop flushes as it writes: one more task, no flush task.
        hub.broadcast(topic: "burst", event: "later", payload: .emptyObject)
        manual.runAll()
        #expect(manual.executed == 5)
        #expect([s1, s2].map(\.receiveCount) == [4, 4])
        #expect([s1, s2].map(\.flushCount) == [4, 4])
        #expect(
            log.all.suffix(4) == [
                .receive(subscriber: "s1", topic: "burst", event: "later", frame: nil), .flush(subscriber: "s1"),
                .receive(subscriber: "s2", topic: "burst", event: "later", frame: nil), .flush(subscriber: "s2"),
            ]
        )
    }

    @Test func loopsWithoutSubscribersForTheTopicAreNotWoken() {
        let s = sub("s")
        let other = sub("other", on: loopB)
        hub.subscribe(s, to: "t")
        hub.subscribe(other, to: "u")
        let before = loopB.executeCount
        hub.broadcast(topic: "t", event: "e", payload: .emptyObject)
        #expect(loopB.executeCount == before)
        #expect(other.flushCount == 0)
    }

    // MARK: Connections

    @Test func localConnectionsDeduplicatesByConnection() {
        let c1 = makeConnection(socketID: "user:1")
        let c2 = makeConnection(socketID: "user:2")
        #expect(c1.id != c2.id)
        let s1 = sub("s1", connection: c1)
        let s2 = sub("s2", connection: c1)  // same connection, same loop
        let s3 = sub("s3", on: loopB, connection: c1)  // same connection, other loop
        let s4 = sub("s4", on: loopB, connection: c2)
        for s in [s1, s2, s3, s4] { hub.subscribe(s, to: "room") }

        #expect(hub.localSubscriberCount(topic: "room") == 4)
        let connections = hub.localConnections(topic: "room")
        #expect(connections.count == 2)
        #expect(Set(connections.map(\.id)) == [c1.id, c2.id])
        #expect(connections.contains { $0 === c1 })
        #expect(connections.contains { $0 === c2 })

        hub.unsubscribe(s4, from: "room")
        #expect(hub.localConnections(topic: "room").map(\.id) == [c1.id])
        #expect(hub.localConnections(topic: "empty").isEmpty)
    }

    @Test func disconnectPublishesDisconnectToTheSocketIDTopic() {
        let s = sub("s", connection: makeConnection(socketID: "user_socket:42"))
        hub.subscribe(s, to: "user_socket:42")
        hub.disconnect(socketID: "user_socket:42")
        #expect(s.broadcasts.map(\.event) == [PhoenixEvent.disconnect])
        #expect(s.broadcasts.first?.topic == "user_socket:42")
        #expect(s.broadcasts.first?.payload == .json(.emptyObject))
    }

    @Test func broadcastEncodableValue() throws {
        struct Note: Encodable {
            let text: String
            let n: Int
        }
        let s = sub("s")
        hub.subscribe(s, to: "t")
        try hub.broadcast(topic: "t", event: "note", encoding: Note(text: "hi", n: 3))
        #expect(s.broadcasts.first?.payload == .json(.object(["text": .string("hi"), "n": .int(3)])))
    }

    @Test func deliverLocallyBypassesTheBroker() {
        let s = sub("s")
        hub.subscribe(s, to: "t")
        hub.deliverLocally(Broadcast(topic: "t", event: "direct", payload: .json(.emptyObject)))
        #expect(s.broadcasts.map(\.event) == ["direct"])
        #expect(broker.calls == [.occupied("t")], "nothing published")
    }
}
