import Logging
import NIOCore
import NIOHTTP1
import Switchboard

/// phoenix.js's long-poll transport at `{socket mount}/longpoll`: `GET` without a live session
/// opens one (410 with its token, as Phoenix answers), `GET` with one parks a poll until messages
/// arrive or the window ends (200 with them, or 204), `POST` hands the client's messages to the
/// session; `OPTIONS` answers CORS. A session lives on the event loop of the connection that
/// opened it; requests arriving on other connections hop there.
///
/// It stays on the loop, not in Hummingbird's router, because a parked poll must learn that its
/// connection closed: otherwise the messages handed to it would be lost with the dead request.
/// Hummingbird's way for a route to learn it (`RequestBody.consumeWithCancellationOnInboundClose`,
/// 2.28) closes the connection once the response is written, so every poll of a phoenix.js client,
/// which polls back to back, would cost a new TCP connection; here the connection stays alive.
package struct LongPollEndpoint: InterceptedEndpoint {
    package let path: String
    package let socket: PhoenixSocket
    package let registry: LongPollRegistry

    package init(path: String, socket: PhoenixSocket, registry: LongPollRegistry) {
        self.path = path
        self.socket = socket
        self.registry = registry
    }

    private static let cors: [(String, String)] = [("access-control-allow-origin", "*"), ("cache-control", "no-store")]

    package func matches(_ head: HTTPRequestHead, isFirstRequest: Bool) -> Bool {
        QueryString.split(uri: head.uri).path == path
    }

    package func maxBodySize(_ head: HTTPRequestHead) -> Int { socket.configuration.maxMessageSize }

    package func answer(_ head: HTTPRequestHead, body: ByteBuffer?, interceptor: HTTPInterceptor) {
        guard let context = interceptor.context else { return }
        let answer = { (json: JSONValue) in interceptor.respond(status: .ok, headers: Self.cors, json: json) }
        switch head.method {
        case .OPTIONS:
            var headers = Self.cors
            headers.append(("access-control-allow-headers", head.headers.first(name: "Access-Control-Request-Headers") ?? ""))
            headers.append(("access-control-allow-methods", "get, post, options"))
            headers.append(("access-control-max-age", "3600"))
            return interceptor.respond(status: .ok, headers: headers, json: nil)
        case .GET, .POST:
            break
        default:
            return interceptor.respond(status: .badRequest, json: nil)
        }
        let request = ConnectRequest(head: head, channel: context.channel)
        guard socket.configuration.checkOrigin.refusal(for: request) == nil else {
            return answer(["status": 403])
        }
        // The session token: the header, else the last `token` parameter (older phoenix.js appends
        // its own after the app's, and Phoenix keeps the last one).
        let token = head.headers.first(name: "X-Phoenix-Longpoll-Token") ?? request.params["token"]
        let existing = token.flatMap { self.registry.session($0) }
        if head.method == .POST {
            guard let session = existing else { return answer(["status": 410]) }
            return post(
                LongPollSession.messages(body ?? ByteBuffer(), contentType: head.headers.first(name: "Content-Type")),
                to: session,
                answer: answer,
                on: context.eventLoop
            )
        }
        if let session = existing {
            return park(session, token: token ?? "", interceptor: interceptor)
        }
        // A GET without a live session opens one (Phoenix answers 410 with the new token).
        // All parameters reach the connect handler (older phoenix.js sends the app's `token` here).
        guard let serializer = PhoenixSerializer.negotiate(vsn: request.params["vsn"]) else { return answer(["status": 403]) }
        let (socket, registry) = (self.socket, self.registry)
        interceptor.connect(socket, request) { result in
            guard let context = interceptor.context else { return }
            switch result {
            case .refuse:
                answer(["status": 403])
            case .accept where interceptor.isShuttingDown:
                interceptor.respondShuttingDown()  // shutdown began while connect decided: no new session
            case .accept(let id, let assigns):
                let newToken = registry.newToken()
                let transport = LongPollSession(
                    token: newToken,
                    eventLoop: context.eventLoop,
                    serializer: serializer,
                    registry: registry,
                    window: socket.configuration.longPollWindow,
                    maxQueuedBytes: socket.configuration.maxQueuedBytes,
                    logger: interceptor.logger
                )
                let loop = context.eventLoop
                let connection = Connection(socketID: id, assigns: assigns, transport: "longpoll") { reason in
                    loop.execute { transport.close(reason) }
                }
                transport.start(
                    PhoenixSession(socket: socket, transport: transport, serializer: serializer, connection: connection, logger: interceptor.logger)
                )
                registry.add(transport)
                answer(["status": 410, "token": .string(newToken), "messages": []])
            }
        }
    }

    /// Hands a POST's messages to the session on its loop, and answers with the outcome.
    private func post(
        _ messages: [LongPollSession.Message],
        to session: LongPollSession,
        answer: @escaping (JSONValue) -> Void,
        on replyLoop: any EventLoop
    ) {
        let respondOnLoop = NIOLoopBound(answer, eventLoop: replyLoop)
        session.eventLoop.execute {
            var result: JSONValue = ["status": 200]
            if let phoenix = session.session, !session.closed {
                for message in messages {
                    let failure: CloseReason?
                    switch message {
                    case .text(let text): failure = phoenix.receive(text: text)
                    case .binary(let binary): failure = phoenix.receive(binary: binary)
                    case .invalid(let detail): failure = .invalidMessage(detail)
                    }
                    if let failure {
                        session.close(failure)
                        result = ["status": 400, "error": .string(failure.reason)]
                        break
                    }
                }
            } else {
                result = ["status": 410]
            }
            let answered = result
            replyLoop.execute { respondOnLoop.value(answered) }
        }
    }

    /// Waits for the session's next messages (or the window's end) and answers the poll.
    private func park(_ session: LongPollSession, token: String, interceptor: HTTPInterceptor) {
        guard let context = interceptor.context else { return }
        let replyLoop = context.eventLoop
        let respondOnLoop = NIOLoopBound(
            { (result: LongPollSession.PollAnswer) in
                guard interceptor.context != nil else { return }
                switch result {
                case .gone:
                    interceptor.respond(status: .ok, headers: Self.cors, json: ["status": 410])
                case .noContent:
                    interceptor.respond(status: .ok, headers: Self.cors, json: ["status": 204, "token": .string(token), "messages": []])
                case .messages(let messages):
                    // The messages are JSON string literals already: splice them in.
                    var body = ByteBuffer()
                    body.writeString("{\"status\":200,\"token\":")
                    JSONWriter.writeString(token, into: &body)
                    body.writeString(",\"messages\":[")
                    for (index, var message) in messages.enumerated() {
                        if index > 0 { body.writeString(",") }
                        body.writeBuffer(&message)
                    }
                    body.writeString("]}")
                    interceptor.respond(status: .ok, headers: Self.cors, body: body, contentType: "application/json; charset=utf-8", close: false)
                }
            },
            eventLoop: replyLoop
        )
        let abandoned = NIOLoopBoundBox(false, eventLoop: replyLoop)
        interceptor.onInactive = {
            abandoned.value = true
            session.eventLoop.execute { session.pollAbandoned() }
        }
        // The server stops: answer the poll at once (410: the session is gone, so phoenix.js
        // reconnects, elsewhere) instead of holding shutdown for the rest of the window.
        interceptor.onQuiesce = {
            abandoned.value = true
            session.eventLoop.execute { session.close(.serviceRestart) }
            interceptor.respond(status: .ok, headers: Self.cors, json: ["status": 410], close: true)
        }
        session.eventLoop.execute {
            session.poll { result in
                replyLoop.execute {
                    guard !abandoned.value else { return }
                    respondOnLoop.value(result)
                }
            }
        }
    }
}
