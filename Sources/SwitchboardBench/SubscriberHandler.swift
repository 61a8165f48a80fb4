import NIOCore

/// One subscriber: a raw TCP connection that does the HTTP upgrade by hand, reads WebSocket
/// frames, joins the topic (Phoenix) and sends heartbeats, and checks every delivery; or (SSE)
/// sends one event-stream request and reads events. No task, no async channel: it is a plain
/// handler on its event loop, so a connection costs a few hundred bytes of bench state and no
/// context switches.
final class SubscriberHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case connecting
        case upgrading
        case joining
        case joined
        case closed
    }

    private let configuration: SubscriberConfiguration
    private let stats: LoopStats
    private let counters: BenchCounters
    /// The subscriber's number in the run (0 ..< --subscribers).
    let index: Int
    /// A slow consumer: stops reading when the publish phase starts; its deliveries are not
    /// measured (see "Slow consumers" below).
    let isSlow: Bool
    /// With topic groups: the two topic numbers this subscriber joined (else -1).
    let personalTopic: Int
    let groupTopic: Int
    /// True when a delivery needs a check beyond the common path (slow, or topic groups).
    private let screensDeliveries: Bool
    private let joinMessages: [[UInt8]]
    private var pendingJoins: Int
    private var state = State.connecting
    private var context: ChannelHandlerContext?
    /// Bytes read but not yet parsed (a partial frame, event or HTTP head); nil when none.
    private var inbound: ByteBuffer?
    private var fragment: ByteBuffer?
    private var fragmentOpcode: UInt8 = 0
    private var handshakeTimeout: Scheduled<Void>?
    private var heartbeat: Scheduled<Void>?
    private var nextRef = 2
    /// Set once the connection has been counted as joined or as failed.
    private var accounted = false
    private var closingByBench = false
    private var serverCloseReason: String?
    private var windows: [SequenceWindow]
    /// Slow consumers: how many messages to read after `resumeReading` before it counts as
    /// caught up; whether it was counted in `BenchCounters.slowSettled`; how it ended.
    private var slowExpected = Int.max
    private var slowSettled = false
    private(set) var serverCloseCode: Int?
    private(set) var socketError: String?
    private(set) var failure: String?

    private(set) var wasJoined = false
    private(set) var received = 0
    private(set) var duplicates = 0
    private(set) var outOfOrder = 0
    private(set) var heartbeatsSent = 0
    private(set) var heartbeatReplies = 0
    /// Deliveries of a topic this subscriber did not join (topic groups).
    private(set) var misrouted = 0
    /// With --publish-during-ramp a subscriber expects, of each publisher connection, the
    /// messages from the first one it received on (requests on one connection are answered,
    /// hence published, in order): (expected, distinct received) given each connection's count.
    func expectedFromFirst(connectionSent: [Int]) -> (expected: Int, distinct: Int) {
        var expected = 0
        var distinct = 0
        for (window, sent) in zip(windows, connectionSent) where window.first >= 0 {
            expected += max(0, sent - window.first)
            distinct += window.distinct
        }
        return (expected, distinct)
    }
    /// When the join reply came, and when the connection ended (0: not yet).
    private(set) var joinedAt: UInt64 = 0
    private(set) var endedAt: UInt64 = 0
    /// Presence frames (`presence_state`, `presence_diff`, `presence_count`) received.
    private(set) var presence = PresenceTally()
    private var diffSecond: UInt64 = 0
    private var diffsInSecond = 0
    var isOpen: Bool { state == .joined }
    var isClosed: Bool { state == .closed }

    init(configuration: SubscriberConfiguration, stats: LoopStats, counters: BenchCounters, index: Int) {
        self.configuration = configuration
        self.stats = stats
        self.counters = counters
        self.index = index
        let slow = configuration.isSlow(index: index)
        self.isSlow = slow
        self.personalTopic = configuration.topicLayout?.personalTopic(ofSubscriber: index) ?? -1
        self.groupTopic = configuration.topicLayout?.groupTopic(ofSubscriber: index) ?? -1
        self.screensDeliveries = slow || configuration.topicLayout != nil
        let joins = configuration.joinMessages(index: index)
        self.joinMessages = joins
        self.pendingJoins = joins.count
        self.nextRef = joins.count + 1
        self.windows = Array(repeating: SequenceWindow(), count: max(1, configuration.publisherConnections))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        stats.subscribers.append(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        counters.tcpConnected.add(1, ordering: .relaxed)
        counters.openSockets.add(1, ordering: .relaxed)
        state = .upgrading
        context.writeAndFlush(wrapOutboundOut(configuration.upgradeRequest(index: index)), promise: nil)
        handshakeTimeout = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(configuration.handshakeTimeout * 1e9))) {
            if self.state != .upgrading {
                self.fail("no join reply in time")
            } else {
                self.fail(
                    self.configuration.wireProtocol == .sse ? "no answer to the event-stream request in time" : "no 101 answer to the upgrade in time"
                )
            }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let previous = state
        state = .closed
        if endedAt == 0 { endedAt = MonotonicClock.nanoseconds() }
        counters.openSockets.subtract(1, ordering: .relaxed)
        handshakeTimeout?.cancel()
        heartbeat?.cancel()
        if !accounted {
            accounted = true
            counters.connectionFailed(previous == .upgrading ? "closed during the upgrade" : "closed before the join reply")
        } else if previous == .joined, !closingByBench {
            if isSlow {
                settleSlow()
            } else {
                counters.connectionLost(serverCloseReason.map { "closed by the server: \($0)" } ?? "connection closed by the server")
            }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if isSlow, wasJoined {
            if socketError == nil { socketError = (error as? IOError).map { "socket error \($0.errnoCode)" } ?? "socket error" }
        } else if !closingByBench, state != .closed {
            counters.note("socket error: \(error)")
        }
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var data = unwrapInboundIn(data)
        let now = MonotonicClock.nanoseconds()
        if var pending = inbound {
            inbound = nil
            pending.writeBuffer(&data)
            process(&pending, now: now)
            if pending.readableBytes > 0, state != .closed {
                pending.discardReadBytes()
                inbound = pending
            }
        } else {
            process(&data, now: now)
            if data.readableBytes > 0, state != .closed { inbound = data }
        }
    }

    /// Closes the connection at the end of the run (a close frame, then the socket).
    func closeForShutdown() {
        guard let context, state != .closed else { return }
        closingByBench = true
        if state == .joining || state == .joined, configuration.wireProtocol != .sse {
            var frame = context.channel.allocator.buffer(capacity: 8)
            WebSocketFrame.writeMasked(opcode: WebSocketFrame.close, payload: [0x03, 0xE8], into: &frame)
            context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        }
        context.close(promise: nil)
    }

    // MARK: - Reading

    private func process(_ buffer: inout ByteBuffer, now: UInt64) {
        if state == .upgrading {
            guard readUpgradeAnswer(&buffer) else { return }
        }
        if configuration.wireProtocol == .sse {
            if state == .joined { readEvents(&buffer, now: now) }
            return
        }
        while state == .joining || state == .joined {
            switch WebSocketFrame.read(from: &buffer, maxPayload: configuration.maxFrameSize) {
            case .incomplete:
                return
            case .invalid(let reason):
                fail(reason)
                return
            case .frame(let frame):
                handle(frame, now: now)
            }
        }
    }

    /// Reads the HTTP answer to the upgrade; true once it was a 101 and the socket speaks WebSocket.
    private func readUpgradeAnswer(_ buffer: inout ByteBuffer) -> Bool {
        let end: Int? = buffer.withUnsafeReadableBytes { bytes in
            guard bytes.count >= 4 else { return nil }
            for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
                return i + 4
            }
            return nil
        }
        guard let end else {
            if buffer.readableBytes > 16384 { fail("upgrade answer head over 16 KiB") }
            return false
        }
        let head = buffer.readString(length: end) ?? ""
        let statusLine = head.prefix { $0 != "\r" }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        if configuration.wireProtocol == .sse {
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1] == "200" else {
                fail("event-stream request refused: \(statusLine)")
                return false
            }
            let fields = head.lowercased()
            guard fields.contains("\r\ncontent-type: text/event-stream") || fields.contains("\r\ncontent-type:text/event-stream") else {
                fail("the answer is not text/event-stream")
                return false
            }
            // Both peers end the body with the connection; a chunked stream would need de-chunking.
            guard !fields.contains("\r\ntransfer-encoding:") else {
                fail("chunked event streams are not supported by the bench")
                return false
            }
            counters.upgraded.add(1, ordering: .relaxed)
            markJoined()
            return true
        }
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1] == "101" else {
            fail("upgrade refused: \(statusLine)")
            return false
        }
        counters.upgraded.add(1, ordering: .relaxed)
        guard let context else { return false }
        if configuration.wireProtocol == .raw {
            markJoined()
            scheduleHeartbeat()
        } else {
            state = .joining
            var frame = context.channel.allocator.buffer(capacity: joinMessages.reduce(0) { $0 + $1.count + 14 })
            for message in joinMessages {
                WebSocketFrame.writeMasked(opcode: WebSocketFrame.text, payload: message, into: &frame)
            }
            context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
            scheduleHeartbeat()
        }
        return true
    }

    private func handle(_ frame: WebSocketFrame.Frame, now: UInt64) {
        switch frame.opcode {
        case WebSocketFrame.text, WebSocketFrame.binary:
            guard fragment == nil else { return fail("new data frame inside a fragmented message") }
            if frame.fin {
                message(frame.payload, now: now)
            } else {
                fragment = frame.payload
                fragmentOpcode = frame.opcode
            }
        case WebSocketFrame.continuation:
            guard var partial = fragment else { return fail("continuation frame without a message") }
            fragment = nil
            var payload = frame.payload
            guard partial.readableBytes + payload.readableBytes <= configuration.maxFrameSize else { return fail("message over the size limit") }
            partial.writeBuffer(&payload)
            if frame.fin { message(partial, now: now) } else { fragment = partial }
        case WebSocketFrame.ping:
            guard let context else { return }
            var pong = context.channel.allocator.buffer(capacity: frame.payload.readableBytes + 6)
            WebSocketFrame.writeMasked(opcode: WebSocketFrame.pong, payload: frame.payload, into: &pong)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case WebSocketFrame.pong:
            break
        case WebSocketFrame.close:
            var payload = frame.payload
            let code = payload.readInteger(as: UInt16.self)
            let reason = payload.readString(length: payload.readableBytes) ?? ""
            serverCloseReason = code.map { "\($0)" + (reason.isEmpty ? "" : " \(reason)") } ?? "close frame without a code"
            serverCloseCode = code.map { Int($0) } ?? 1005
            if !accounted {
                fail("closed by the server before joining: \(serverCloseReason!)")
                return
            }
            if let context {
                var answer = context.channel.allocator.buffer(capacity: 8)
                WebSocketFrame.writeMasked(
                    opcode: WebSocketFrame.close,
                    payload: code.map { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } ?? [],
                    into: &answer
                )
                context.writeAndFlush(wrapOutboundOut(answer), promise: nil)
                context.close(promise: nil)
            }
        default:
            fail("unknown opcode \(frame.opcode)")
        }
    }

    /// Takes the complete events off the front of `buffer` (the rest waits for more bytes).
    private func readEvents(_ buffer: inout ByteBuffer, now: UInt64) {
        let consumed = buffer.withUnsafeReadableBytes { bytes in
            EventStreamParser.parse(bytes) { block in self.event(block, now: now) }
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        if buffer.readableBytes > configuration.maxFrameSize { fail("event over the size limit") }
    }

    private func event(_ block: EventStreamParser.Block, now: UInt64) {
        guard state == .joined else { return }
        stats.streamComments &+= block.comments
        guard let data = block.data else { return }  // comments, retry: no event
        if let delivery = Delivery.parse(data) {
            record(delivery, now: now)
        } else if let name = block.event, EventStreamParser.equals(name, "switchboard:close") {
            // Switchboard's last event before it ends a stream: {"code": …, "reason": …}.
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: data.prefix(200)), as: UTF8.self)
            serverCloseReason = text
            serverCloseCode = Self.closeCode(inEventData: text)
        } else {
            stats.otherFrames += 1
        }
    }

    private func message(_ payload: ByteBuffer, now: UInt64) {
        payload.withUnsafeReadableBytes { bytes in
            // A big frame is looked at for a presence event first, so a presence_state of
            // thousands of members is not scanned for delivery fields; small frames (deliveries)
            // keep the fast path and are looked at only when they are not a delivery.
            if bytes.count > Self.presenceFirstSize, countPresence(bytes, now: now) { return }
            if let delivery = Delivery.parse(bytes) {
                record(delivery, now: now)
            } else if Delivery.contains("\"phx_reply\"", in: bytes) {
                if Delivery.contains("\"phoenix\"", in: bytes) {
                    heartbeatReplies += 1
                } else if state == .joining {
                    if Delivery.contains("\"status\":\"ok\"", in: bytes) {
                        pendingJoins -= 1
                        if pendingJoins == 0 { markJoined() }
                    } else {
                        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes.prefix(200)), as: UTF8.self)
                        fail("join refused: \(text)")
                    }
                } else {
                    stats.otherFrames += 1
                }
            } else if bytes.count > Self.presenceFirstSize || !countPresence(bytes, now: now) {
                stats.otherFrames += 1
            }
        }
    }

    /// Frames larger than this are checked for a presence event before the delivery parser.
    private static let presenceFirstSize = 2048

    /// Counts the frame if it is a presence event (its name within the frame's first 256 bytes,
    /// where Phoenix's V2 array and V1 object put it before the payload); true if it was.
    private func countPresence(_ bytes: UnsafeRawBufferPointer, now: UInt64) -> Bool {
        let head = UnsafeRawBufferPointer(rebasing: bytes.prefix(256))
        guard Delivery.contains("\"presence_", in: head) else { return false }
        if Delivery.contains("\"presence_diff\"", in: head) {
            presence.diffs += 1
            presence.diffBytes += bytes.count
            let second = now / 1_000_000_000
            if second != diffSecond {
                diffSecond = second
                diffsInSecond = 0
            }
            diffsInSecond += 1
            presence.maxDiffsPerSecond = max(presence.maxDiffsPerSecond, diffsInSecond)
        } else if Delivery.contains("\"presence_state\"", in: head) {
            presence.states += 1
            presence.stateBytes += bytes.count
        } else if Delivery.contains("\"presence_count\"", in: head) {
            presence.counts += 1
            presence.countBytes += bytes.count
        } else {
            return false
        }
        return true
    }

    /// This subscriber's presence tally, with the seconds it was joined up to `now`.
    func presenceTally(now: UInt64) -> PresenceTally {
        var tally = presence
        if wasJoined {
            let end = endedAt != 0 ? min(endedAt, now) : now
            tally.subscribers = 1
            tally.subscriberSeconds = end > joinedAt ? Double(end - joinedAt) / 1e9 : 0
        }
        return tally
    }

    @inline(__always)
    private func record(_ delivery: Delivery, now: UInt64) {
        received += 1
        if screensDeliveries {
            if isSlow {
                // Not measured: only counted, to tell when a resumed reader has caught up.
                if received >= slowExpected { settleSlow() }
                return
            }
            if delivery.topic != personalTopic, delivery.topic != groupTopic {
                misrouted += 1
                return
            }
        }
        guard delivery.connection >= 0, delivery.connection < windows.count else {
            stats.malformed += 1
            return
        }
        switch windows[delivery.connection].record(delivery.connectionSequence) {
        case .inOrder:
            stats.record(id: delivery.id, sentAt: delivery.sentAt, now: now)
        case .outOfOrder:
            outOfOrder += 1
            stats.record(id: delivery.id, sentAt: delivery.sentAt, now: now)
        case .duplicate:
            duplicates += 1
        }
    }

    // MARK: - Slow consumers

    /// Stops reading from the socket (publish phase start), so the server's queue to this
    /// subscriber grows until the server closes it or the run ends. Only a server close (FIN or
    /// reset) still makes NIO read what is buffered.
    func stopReading() {
        guard isSlow, state == .joined, let context else { return }
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
    }

    /// Reads again (after the drain) to find out whether the server closed the connection: it
    /// settles once it reads the end of the stream or `expected` messages (caught up, still open).
    func resumeReading(expected: Int) {
        guard isSlow, wasJoined else { return }
        slowExpected = expected
        if state == .closed || received >= expected { settleSlow() }
        guard state != .closed, let context else { return }
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
    }

    /// How a slow consumer's connection ended (nil: still open; only after the bench closed it).
    var slowOutcome: String? {
        guard state == .closed, !closingByBench else { return nil }
        if let failure { return "closed by the bench: \(failure)" }
        if let serverCloseCode { return "close code \(serverCloseCode)" }
        if let socketError { return socketError }
        return "end of stream without a close \(configuration.wireProtocol == .sse ? "event" : "frame")"
    }

    private func settleSlow() {
        guard isSlow, wasJoined, !slowSettled else { return }
        slowSettled = true
        counters.slowSettled.add(1, ordering: .relaxed)
    }

    /// The code in a `switchboard:close` event's data, `{"code":1008,"reason":"…"}`.
    private static func closeCode(inEventData text: String) -> Int? {
        guard let key = text.firstRange(of: "\"code\"") else { return nil }
        let digits = text[key.upperBound...].drop { $0 == ":" || $0 == " " }.prefix { $0.isASCII && $0.isNumber }
        return Int(digits)
    }

    // MARK: - Lifecycle

    private func markJoined() {
        state = .joined
        wasJoined = true
        joinedAt = MonotonicClock.nanoseconds()
        handshakeTimeout?.cancel()
        handshakeTimeout = nil
        if !accounted {
            accounted = true
            counters.joined.add(1, ordering: .relaxed)
        }
    }

    private func fail(_ reason: String) {
        guard state != .closed else { return }
        if endedAt == 0 { endedAt = MonotonicClock.nanoseconds() }
        if !accounted {
            accounted = true
            counters.connectionFailed(reason)
        } else if state == .joined, !closingByBench {
            if isSlow {
                failure = reason
                settleSlow()
            } else {
                counters.connectionLost(reason)  // state becomes .closed: channelInactive will not count it again
            }
        }
        state = .closed
        handshakeTimeout?.cancel()
        heartbeat?.cancel()
        context?.close(promise: nil)
    }

    private func scheduleHeartbeat() {
        guard configuration.heartbeatInterval > 0, let context else { return }
        heartbeat = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(configuration.heartbeatInterval * 1e9))) {
            self.sendHeartbeat()
        }
    }

    private func sendHeartbeat() {
        guard let context, state == .joining || state == .joined else { return }
        var frame = context.channel.allocator.buffer(capacity: 64)
        if configuration.wireProtocol == .raw {
            // No protocol above WebSocket: a ping keeps the server's idle timer from closing us.
            WebSocketFrame.writeMasked(opcode: WebSocketFrame.ping, payload: [UInt8](), into: &frame)
        } else {
            WebSocketFrame.writeMasked(opcode: WebSocketFrame.text, payload: configuration.heartbeatMessage(ref: nextRef), into: &frame)
        }
        nextRef += 1
        heartbeatsSent += 1
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        scheduleHeartbeat()
    }
}
