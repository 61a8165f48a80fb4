import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import Switchboard
import SwitchboardTransports

/// A WebSocket upgrade on a later request of a kept-alive connection (reverse proxies reuse
/// upstream connections; NIO's upgrade handler takes only a connection's first request): the
/// same decisions as a first request's (`PhoenixWebSocketUpgrader`), then the WebSocket handlers
/// take the connection over in front of the HTTP server's handlers, which see nothing more.
struct WebSocketUpgradeEndpoint: InterceptedEndpoint {
    let sockets: [(path: String, socket: PhoenixSocket)]
    let plainResponder: PlainUpgradeResponder?

    func matches(_ head: HTTPRequestHead, isFirstRequest: Bool) -> Bool {
        !isFirstRequest && head.headers[canonicalForm: "Upgrade"].contains { $0.lowercased() == "websocket" }
    }

    func maxBodySize(_ head: HTTPRequestHead) -> Int { 0 }

    func answer(_ head: HTTPRequestHead, body: ByteBuffer?, interceptor: HTTPInterceptor) {
        guard let context = interceptor.context else { return }
        let decision = NIOLoopBoundBox<UpgradeDecision?>(nil, eventLoop: context.eventLoop)
        let upgrader = PhoenixWebSocketUpgrader(sockets: sockets, plainResponder: plainResponder, decision: decision, logger: interceptor.logger)
        var initial = HTTPHeaders()
        initial.add(name: "upgrade", value: "websocket")
        initial.add(name: "connection", value: "upgrade")
        upgrader.buildUpgradeResponse(channel: context.channel, upgradeRequest: head, initialResponseHeaders: initial)
            .hop(to: context.eventLoop)
            .whenComplete { result in
                guard interceptor.context != nil else { return }
                switch result {
                case .success where interceptor.isShuttingDown:
                    interceptor.respondShuttingDown()
                case .success(let headers):
                    Self.switchProtocols(head, headers: headers, upgrader: upgrader, interceptor: interceptor)
                case .failure:
                    guard case .refused(let refusal) = decision.value else {
                        return interceptor.respond(status: .badRequest, json: ["error": "invalid WebSocket upgrade request"], close: true)
                    }
                    interceptor.respond(refusal, close: true)
                }
            }
    }

    private static func switchProtocols(
        _ head: HTTPRequestHead,
        headers: HTTPHeaders,
        upgrader: PhoenixWebSocketUpgrader,
        interceptor: HTTPInterceptor
    ) {
        guard let context = interceptor.context else { return }
        let response = HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers))
        context.writeAndFlush(NIOAny(response), promise: nil)
        do {
            try interceptor.takeOver { pipeline, context in
                let channel = context.channel
                upgrader.upgrade(channel: channel, upgradeRequest: head, position: .after(interceptor)).whenFailure { _ in channel.close(promise: nil)
                }
                if let state = try? pipeline.handler(type: HTTPConnectionStateHandler.self) {
                    pipeline.removeHandler(state, promise: nil)  // it would close the connection as idle
                }
            }
        } catch {
            interceptor.logger.debug("could not upgrade a kept-alive connection", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }
}
