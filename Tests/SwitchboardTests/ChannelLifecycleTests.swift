import Testing

@testable import Switchboard

/// The channel lifecycle's rules (`ChannelServer.Lifecycle`), without sockets, tasks or a hub.
@Suite("Channel lifecycle")
struct ChannelLifecycleTests {
    typealias Lifecycle = ChannelServer.Lifecycle

    @Test("pushes made while joining are held and released, in order, when the join succeeds; later ones are sent")
    func heldPushes() {
        var life = Lifecycle()
        #expect(life.push(event: "a", payload: .json(1)) == .held)
        #expect(life.push(event: "b", payload: .json(2)) == .held)
        guard case .subscribe(let pushes, let presenceState) = life.joinSucceeded() else {
            Issue.record("a joining channel subscribes")
            return
        }
        #expect(pushes.map(\.event) == ["a", "b"])
        #expect(presenceState == false)
        #expect(life.phase == .joined)
        #expect(life.push(event: "c", payload: .json(3)) == .send)
        guard case .ended = life.joinSucceeded() else {
            Issue.record("a second success must not subscribe again")
            return
        }
    }

    @Test("a presence snapshot asked for while joining is held until the join succeeds, then sent at once; dropped after the end")
    func presenceSnapshot() {
        var life = Lifecycle()
        #expect(life.presenceState() == .held)
        guard case .subscribe(_, let presenceState) = life.joinSucceeded() else {
            Issue.record("a joining channel subscribes")
            return
        }
        #expect(presenceState)
        #expect(life.presenceState() == .send)
        _ = life.end()
        #expect(life.presenceState() == .drop)
    }

    @Test("a channel that ends while its join runs does not subscribe, and its held pushes are dropped")
    func endedWhileJoining() {
        var life = Lifecycle()
        _ = life.push(event: "a", payload: .json(1))
        #expect(life.end() == false)  // never joined: no terminate
        guard case .ended = life.joinSucceeded() else {
            Issue.record("an ended channel must not subscribe")
            return
        }
        #expect(life.push(event: "b", payload: .json(2)) == .drop)
    }

    @Test("terminate runs only for a channel that had joined")
    func terminateOnlyWhenJoined() {
        var life = Lifecycle()
        _ = life.joinSucceeded()
        #expect(life.end() == true)
        #expect(life.isClosed)
        #expect(life.end() == false)
    }

    @Test("fast-lane frames queue behind intercepted broadcasts still pending, and go straight out again once they are sent")
    func orderBehindIntercepts() {
        var life = Lifecycle()
        _ = life.joinSucceeded()
        #expect(life.broadcastArrived(intercepted: false) == .write)
        #expect(life.broadcastArrived(intercepted: true) == .handleOut)
        #expect(life.broadcastArrived(intercepted: false) == .queueBehind)
        #expect(life.pendingOutbound == 2)
        life.outboundSent()  // the intercepted one
        #expect(life.broadcastArrived(intercepted: false) == .queueBehind)  // the queued frame is still pending
        life.outboundSent()
        life.outboundSent()
        #expect(life.pendingOutbound == 0)
        #expect(life.broadcastArrived(intercepted: false) == .write)
    }
}
