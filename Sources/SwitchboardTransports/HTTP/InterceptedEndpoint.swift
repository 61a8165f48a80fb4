import NIOCore
import NIOHTTP1

/// A request the `HTTPInterceptor` answers itself, on the connection's event loop, before
/// Hummingbird sees it: what must stay on the loop (an SSE stream that takes the connection over
/// keeps an idle stream at ~6.6 KiB; an on-loop publish halved the answer time; a parked long poll
/// must learn that its connection closed, or the messages it takes are lost).
package protocol InterceptedEndpoint: Sendable {
    /// Whether this endpoint takes the request. `isFirstRequest`: NIO's upgrade handler is still in
    /// the pipeline (it takes a connection's first request).
    func matches(_ head: HTTPRequestHead, isFirstRequest: Bool) -> Bool
    /// The largest body this endpoint reads.
    func maxBodySize(_ head: HTTPRequestHead) -> Int
    /// Whether an oversized body is read to its end (and dropped) before the 413, so that a
    /// client still sending it sees the answer instead of a reset.
    var drainsOversizedBody: Bool { get }
    /// Answers the complete request through `interceptor` (exactly one answer, a hand-over, or a
    /// pass-on to the HTTP server).
    func answer(_ head: HTTPRequestHead, body: ByteBuffer?, interceptor: HTTPInterceptor)
    /// Answers a request whose body is over `maxBodySize` (413); `close` when the rest of the body
    /// was not read.
    func answerTooLarge(_ head: HTTPRequestHead, close: Bool, interceptor: HTTPInterceptor)
}

extension InterceptedEndpoint {
    package var drainsOversizedBody: Bool { false }

    package func answerTooLarge(_ head: HTTPRequestHead, close: Bool, interceptor: HTTPInterceptor) {
        interceptor.respond(status: .payloadTooLarge, json: ["error": "request body too large"], close: close)
    }
}
