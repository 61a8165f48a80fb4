import NIOCore
import NIOHTTP1
import Testing

@testable import SwitchboardTransports

/// The interceptor's decisions, without a channel: each event in, the action out.
@Suite("HTTP interceptor state machine")
struct HTTPInterceptorStateMachineTests {
    typealias Machine = HTTPInterceptor.StateMachine

    private func head(_ method: HTTPMethod = .GET, _ uri: String = "/", keepAlive: Bool = true) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
        if !keepAlive { head.headers.add(name: "connection", value: "close") }
        return head
    }

    private let ours = HTTPInterceptor.Route.ours(endpoint: 0, maxBodySize: 8, drainsOversized: false)
    private let draining = HTTPInterceptor.Route.ours(endpoint: 1, maxBodySize: 8, drainsOversized: true)

    @Test(
        "a request for the HTTP server passes whole; the connection is idle again once both its end and its answer's end are through, in either order"
    )
    func passing() {
        var machine = Machine()
        #expect(machine.head(head(), route: .server) == .forward)
        #expect(machine.body(ByteBuffer(string: "x")) == .forward)
        #expect(machine.end() == .forward)
        #expect(!machine.isIdle)
        #expect(machine.answerEnded() == .armHeadTimer)
        #expect(machine.isIdle)
        // Answered before the request ended (e.g. an early 413): idle only after the end.
        #expect(machine.head(head(.POST), route: .server) == .forward)
        #expect(machine.answerEnded() == .none)
        #expect(machine.end() == .forward)
        #expect(machine.isIdle)
    }

    @Test("one of ours is collected and answered at its end; its answer makes the connection idle")
    func collectedAndAnswered() {
        var machine = Machine()
        let request = head(.POST, "/api/broadcast")
        #expect(machine.head(request, route: ours) == .none)
        #expect(machine.body(ByteBuffer(string: "1234")) == .none)
        #expect(machine.body(ByteBuffer(string: "5678")) == .none)
        #expect(machine.end() == .answer(endpoint: 0, head: request, body: ByteBuffer(string: "12345678")))
        #expect(machine.answerEnded() == .armHeadTimer)
        #expect(machine.isIdle)
    }

    @Test("an oversized body: answered at once and closed, or drained and answered keeping the connection; a drain past its own limit closes")
    func oversized() {
        var machine = Machine()
        let request = head(.POST, "/x")
        _ = machine.head(request, route: ours)
        #expect(machine.body(ByteBuffer(string: "123456789")) == .answerTooLarge(endpoint: 0, head: request, close: true))
        var drains = Machine()
        _ = drains.head(request, route: draining)
        #expect(drains.body(ByteBuffer(string: "123456789")) == .none)
        #expect(drains.body(ByteBuffer(string: "more")) == .none)
        #expect(drains.end() == .answerTooLarge(endpoint: 1, head: request, close: false))
        var endless = Machine()
        _ = endless.head(request, route: draining)
        _ = endless.body(ByteBuffer(string: "123456789"))
        let huge = ByteBuffer(repeating: 0, count: Machine.maxDiscardedBytes + 1)
        #expect(endless.body(huge) == .answerTooLarge(endpoint: 1, head: request, close: true))
    }

    @Test("a first request that asks for an upgrade goes to NIO's upgrade handler, and the interceptor steps aside")
    func upgrade() {
        var machine = Machine()
        #expect(machine.head(head(), route: .upgradeHandler) == .stepAside)
        #expect(machine.state == .done)
    }

    @Test("shutdown: an idle connection closes at once; a busy one answers first, a parked answer of ours is given now; then nothing new starts")
    func quiesce() {
        var idle = Machine()
        #expect(idle.quiesce() == .close)
        #expect(idle.quiesce() == .none)

        var passing = Machine()
        _ = passing.head(head(), route: .server)
        #expect(passing.quiesce() == .closeAfterAnswer)
        _ = passing.end()
        #expect(passing.answerEnded() == .close)

        var answering = Machine()
        _ = answering.head(head(), route: ours)
        _ = answering.end()
        #expect(answering.quiesce() == .answerNow)

        var late = Machine()
        _ = late.quiesce()
        #expect(late.head(head(), route: ours) == .refuseShuttingDown)
    }

    @Test(
        "a parse error is answered 400 and closes, unless ours is being answered (then it just closes), the HTTP server reads the request that broke, or the connection is no longer HTTP"
    )
    func parseErrors() {
        var idle = Machine()
        #expect(idle.parseError() == .respondAndClose)
        var answering = Machine()
        _ = answering.head(head(), route: ours)
        _ = answering.end()
        #expect(answering.parseError() == .close)
        var streaming = Machine()
        streaming.handedOver()
        #expect(streaming.parseError() == .forward)
        var serverReading = Machine()
        _ = serverReading.head(head(.POST), route: .server)
        #expect(serverReading.parseError() == .forward)
    }

    @Test("the head timer: a partial head gets 408, silence a quiet close, and a busy connection nothing")
    func headTimeout() {
        var partial = Machine()
        #expect(partial.headTimedOut(partial: true) == .respondAndClose)
        var silent = Machine()
        #expect(silent.headTimedOut(partial: false) == .close)
        var busy = Machine()
        _ = busy.head(head(), route: .server)
        #expect(busy.headTimedOut(partial: true) == .none)
    }

    @Test("a request our endpoint hands on to the HTTP server is the server's to answer")
    func passedOn() {
        var machine = Machine()
        _ = machine.head(head(), route: ours)
        _ = machine.end()
        machine.passedOn()
        #expect(!machine.isIdle)
        #expect(machine.answerEnded() == .armHeadTimer)
        #expect(machine.isIdle)
    }
}
