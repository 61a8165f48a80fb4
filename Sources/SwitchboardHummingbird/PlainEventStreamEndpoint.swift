import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Switchboard
import SwitchboardTransports

/// Plain channels over Server-Sent Events: a `GET` that accepts `text/event-stream` asks the
/// plain-channel routes; a route that accepts gets a client like its WebSocket ones whose
/// transport is the stream; no route → the request goes on to the HTTP server.
struct PlainEventStreamEndpoint: InterceptedEndpoint {
    let responder: PlainUpgradeResponder

    func matches(_ head: HTTPRequestHead, isFirstRequest: Bool) -> Bool {
        head.method == .GET && head.headers[canonicalForm: "Accept"].contains { $0.lowercased().hasPrefix("text/event-stream") }
    }

    func maxBodySize(_ head: HTTPRequestHead) -> Int { 1 << 16 }

    func answer(_ head: HTTPRequestHead, body: ByteBuffer?, interceptor: HTTPInterceptor) {
        guard let context = interceptor.context else { return }
        guard let request = try? HTTPRequest(head, secure: false, splitCookie: false) else {
            return interceptor.respond(status: .badRequest, json: ["error": "invalid request"])
        }
        let origin = head.headers.first(name: "Origin")
        PhoenixWebSocketUpgrader.askPlainRoutes(responder, request: request, channel: context.channel, logger: interceptor.logger).whenSuccess {
            decision in
            guard let context = interceptor.context else { return }
            switch decision {
            case .plain where interceptor.isShuttingDown:
                interceptor.respondShuttingDown()
            case .plain(let configuration, let assigns, let makeSession) where configuration.eventStreams:
                let handler = EventStreamHandler(
                    eventLoop: context.eventLoop,
                    format: configuration.eventStreamFormat,
                    keepAlive: configuration.eventStreamKeepAlive,
                    logger: interceptor.logger
                )
                let loop = context.eventLoop
                let connection = Connection(socketID: nil, assigns: assigns, transport: "sse") { reason in
                    loop.execute { handler.close(reason) }
                }
                let session = makeSession(handler, connection)
                handler.attach(session)
                if EventStreamEndpoint.open(
                    handler,
                    on: interceptor,
                    retry: configuration.eventStreamRetry,
                    origin: origin,
                    limit: OutboundLimit(maxQueuedBytes: configuration.maxQueuedBytes),
                    headOnly: false
                ) {
                    session.start()
                }
            case .refused(let refusal):
                interceptor.respond(refusal)
            case .plain, .accepted, .none:
                interceptor.passOn(head, body: body)
            }
        }
    }
}
