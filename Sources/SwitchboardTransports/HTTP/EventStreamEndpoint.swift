import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Switchboard

/// Phoenix channels over Server-Sent Events: `GET {mount}?topics=a,b` and `GET {mount}/{topic}`.
/// The socket's connect handler decides the request, then every topic is joined through the
/// session (`PhoenixSession.join(topics:)`, the query parameters as join payload): all joined →
/// the stream opens; the connect or any join refused → 403 with the reason, never a half-open stream.
package struct EventStreamEndpoint: InterceptedEndpoint {
    package let mount: String
    package let socket: PhoenixSocket

    package init(mount: String, socket: PhoenixSocket) {
        self.mount = mount
        self.socket = socket
    }

    package func matches(_ head: HTTPRequestHead, isFirstRequest: Bool) -> Bool {
        pathTopic(head) != nil
    }

    /// nil: not this mount; `.some(nil)`: the mount itself; `.some(topic)`: a topic in the path.
    private func pathTopic(_ head: HTTPRequestHead) -> String?? {
        let path = QueryString.split(uri: head.uri).path
        if path == mount { return .some(nil) }
        guard path.hasPrefix(mount + "/"), path.count > mount.count + 1 else { return nil }
        let raw = String(path.dropFirst(mount.count + 1))
        return .some(raw.removingPercentEncoding ?? raw)
    }

    package func maxBodySize(_ head: HTTPRequestHead) -> Int { socket.configuration.maxMessageSize }

    package func answer(_ head: HTTPRequestHead, body: ByteBuffer?, interceptor: HTTPInterceptor) {
        guard let context = interceptor.context else { return }
        guard head.method == .GET || head.method == .HEAD else {
            return interceptor.respond(status: .methodNotAllowed, headers: [("allow", "GET")], json: ["error": "event streams are read with GET"])
        }
        let request = ConnectRequest(head: head, channel: context.channel)
        var topics: [String] = []
        if case .some(.some(let topic)) = pathTopic(head) { topics.append(topic) }
        for item in request.queryItems where item.name == "topics" || item.name == "topic" {
            topics += item.value.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var seen = Set<String>()
        topics = topics.filter { seen.insert($0).inserted }
        guard !topics.isEmpty else {
            return interceptor.respond(status: .badRequest, json: ["error": "no topic: use ?topics=a,b or a path ending in the topic"])
        }
        if let refusal = socket.configuration.checkOrigin.refusal(for: request) {
            return interceptor.respond(refusal)
        }
        // Each topic is joined with the query parameters (other than the topic list) as its payload.
        var payload: [String: JSONValue] = [:]
        for (name, value) in request.params where name != "topics" && name != "topic" {
            payload[name] = .string(value)
        }
        let origin = head.headers.first(name: "Origin")
        let socket = self.socket
        interceptor.connect(socket, request) { result in
            guard let context = interceptor.context else { return }  // the client left while we decided
            switch result {
            case .refuse(let status, let reason):
                interceptor.respond(ConnectRefusal(status: status, reason: reason ?? "connection refused"))
            case .accept(let id, let assigns):
                let handler = EventStreamHandler(
                    eventLoop: context.eventLoop,
                    keepAlive: socket.configuration.eventStreamKeepAlive,
                    logger: interceptor.logger
                )
                let loop = context.eventLoop
                let connection = Connection(socketID: id, assigns: assigns, transport: "sse") { reason in
                    loop.execute { handler.close(reason) }
                }
                let session = PhoenixSession(socket: socket, transport: handler, serializer: .v2, connection: connection, logger: interceptor.logger)
                // Answered once: by the joins' outcome, or by a close before they ended (a
                // disconnect, a mailbox overflow), whose reason then refuses the request.
                let answered = NIOLoopBoundBox(false, eventLoop: loop)
                handler.attach(session) { reason in
                    guard !answered.value, interceptor.context != nil else { return }
                    answered.value = true
                    interceptor.respond(ConnectRefusal(status: 403, reason: reason.reason))
                }
                interceptor.onInactive = { handler.abandon() }
                session.start()
                session.join(topics: topics, payload: .object(payload)) { outcome in
                    guard !answered.value else { return }
                    answered.value = true
                    guard interceptor.context != nil else { return handler.abandon() }
                    switch outcome {
                    case .joined:
                        Self.open(
                            handler,
                            on: interceptor,
                            retry: socket.configuration.eventStreamRetry,
                            origin: origin,
                            limit: OutboundLimit(maxQueuedBytes: socket.configuration.maxQueuedBytes),
                            headOnly: head.method == .HEAD
                        )
                    case .refused(let topic, let reason):
                        handler.abandon()
                        interceptor.respond(status: .forbidden, json: ["error": .string(reason), "topic": .string(topic)])
                    }
                }
            }
        }
    }

    /// Answers with the stream's head and hands the connection to the stream's handler (for the
    /// Phoenix and the plain-channel streams). Returns whether the stream opened.
    @discardableResult
    package static func open(
        _ handler: EventStreamHandler,
        on interceptor: HTTPInterceptor,
        retry: TimeAmount,
        origin: String?,
        limit: OutboundLimit,
        headOnly: Bool
    ) -> Bool {
        // Shutdown began while the stream's connect or joins were decided: no new stream.
        guard !interceptor.isShuttingDown else {
            handler.abandon()
            interceptor.respondShuttingDown()
            return false
        }
        var head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\nx-accel-buffering: no\r\nconnection: close\r\n"
        if let origin {
            head += "access-control-allow-origin: \(origin)\r\naccess-control-allow-credentials: true\r\nvary: origin\r\n"
        }
        head += "\r\n"
        do {
            try interceptor.takeOver(firstRequest: true) { pipeline, context in
                var bytes = ByteBuffer(string: head)
                if headOnly {
                    handler.abandon()
                    let channel = context.channel
                    context.writeAndFlush(NIOAny(bytes)).whenComplete { _ in channel.close(promise: nil) }
                    return
                }
                var retryLine = EventStreamEncoding.retry(milliseconds: Int(retry.nanoseconds / 1_000_000))
                bytes.writeBuffer(&retryLine)
                context.write(NIOAny(bytes), promise: nil)
                try limit.install(on: context.channel)
                // The stream's handler goes right after the interceptor: its writes pass only the
                // handlers in front, and it sees the connection's end first.
                try pipeline.addHandler(handler, position: .after(interceptor))
            }
        } catch {
            interceptor.logger.debug("could not open event stream", metadata: ["error": "\(error)"])
            handler.abandon()
            interceptor.context?.close(promise: nil)
            return false
        }
        return !headOnly && handler.isOpen
    }
}
