import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Switchboard

/// A Hummingbird child channel that serves ordinary HTTP through the app's router and upgrades
/// requests for Phoenix socket paths to WebSocket connections owned by NIO handlers (no task per
/// connection once upgraded).
public struct SwitchboardHTTPChannel: ServerChildChannel, HTTPChannelHandler {
    public struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<SwitchboardUpgradeResult>
        public let channel: any Channel
    }

    public let responder: HTTPChannelHandler.Responder
    let sockets: [(path: String, socket: PhoenixSocket)]
    let http1: HTTP1Channel.Configuration

    /// - Parameters:
    ///   - sockets: Phoenix sockets by mount path (e.g. `/socket`; the WebSocket is at `/socket/websocket`).
    public init(responder: @escaping HTTPChannelHandler.Responder, sockets: [String: PhoenixSocket], http1: HTTP1Channel.Configuration = .init()) {
        self.responder = responder
        self.sockets = sockets.map { (path: $0.key.hasSuffix("/") ? String($0.key.dropLast()) : $0.key, socket: $0.value) }
        self.http1 = http1
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let decision = NIOLoopBoundBox<UpgradeDecision?>(nil, eventLoop: channel.eventLoop)
            let upgrader = PhoenixWebSocketUpgrader(sockets: sockets, decision: decision, logger: logger)
            let http1 = self.http1
            let configuration = NIOTypedHTTPServerUpgradeConfiguration<SwitchboardUpgradeResult>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandlers(http1.additionalChannelHandlers())
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        if case .refused(let status, let reason) = decision.value {
                            return .refused(asyncChannel, status: status, reason: reason)
                        }
                        return .notUpgraded(asyncChannel)
                    }
                }
            )
            var pipeline = NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: configuration)
            pipeline.enablePipelining = false
            pipeline.enableErrorHandling = false
            pipeline.enableResponseHeaderValidation = false
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: pipeline)
            return Value(upgradeResult: result, channel: channel)
        }
    }

    public func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .webSocket:
                return  // the connection's handlers own it now
            case .notUpgraded(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .refused(let http, let status, let reason):
                await writeRefusal(http, status: status, reason: reason, logger: logger)
            }
        } catch {
            logger.debug("upgrade failed", metadata: ["error": "\(error)"])
            value.channel.close(promise: nil)
        }
    }

    private func writeRefusal(_ asyncChannel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, status: Int, reason: String?, logger: Logger) async {
        do {
            try await asyncChannel.executeThenClose { _, outbound in
                var body = ByteBuffer()
                if let reason {
                    JSONWriter.write(["error": .string(reason)], into: &body)
                }
                var headers: HTTPFields = [.connection: "close", .contentLength: String(body.readableBytes)]
                if body.readableBytes > 0 { headers[.contentType] = "application/json" }
                try await outbound.write(.head(HTTPResponse(status: .init(code: status), headerFields: headers)))
                if body.readableBytes > 0 { try await outbound.write(.body(body)) }
                try await outbound.write(.end(nil))
            }
        } catch {
            logger.trace("could not write refusal", metadata: ["error": "\(error)"])
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with Phoenix sockets mounted at the given paths, e.g. `["/socket": socket]`.
    public static func switchboard(sockets: [String: PhoenixSocket], http1: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        .init { responder in
            SwitchboardHTTPChannel(responder: responder, sockets: sockets, http1: http1)
        }
    }
}
