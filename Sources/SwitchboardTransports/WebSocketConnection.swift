import Crypto
import Foundation
import Logging
import NIOCore
import NIOWebSocket
import Switchboard

/// A WebSocket connection after the upgrade, set up the same way for Phoenix and plain channels:
/// NIO's frame decoder, then `WebSocketConnectionHandler` (our own framing, so no frame encoder),
/// and the outbound limit on the channel.
public enum WebSocketConnection {
    /// Installs the frame decoder and the connection handler (which keeps the idle timer); sets the outbound limit.
    public static func install(
        on channel: any Channel,
        format: FrameFormat,
        maxMessageSize: Int,
        idleTimeout: TimeAmount,
        pingInterval: TimeAmount? = nil,
        maxQueuedBytes: Int,
        position: ChannelPipeline.SynchronousOperations.Position = .last,
        logger: Logger,
        makeSession: @escaping (WebSocketConnectionHandler) -> any Session
    ) throws {
        let decoder = ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxMessageSize))
        try channel.pipeline.syncOperations.addHandler(decoder, position: position)
        let limit = OutboundLimit(maxQueuedBytes: maxQueuedBytes)
        let handler = WebSocketConnectionHandler(
            eventLoop: channel.eventLoop,
            broadcastFormat: format,
            maxMessageSize: maxMessageSize,
            idleTimeout: idleTimeout,
            pingInterval: pingInterval,
            logger: logger,
            makeSession: makeSession
        )
        try channel.pipeline.syncOperations.addHandler(handler, position: .after(decoder))
        try limit.install(on: channel)
    }

    /// A connection whose `close` reaches the channel's handler.
    public static func connection(channel: any Channel, socketID: String?, assigns: Assigns, transport: String) -> Connection {
        Connection(socketID: socketID, assigns: assigns, transport: transport) { reason in
            // Looked up rather than captured: the handler owns the connection, not the other way round.
            channel.pipeline.handler(type: WebSocketConnectionHandler.self).whenSuccess { $0.close(reason) }
        }
    }

    /// `Sec-WebSocket-Accept` for a client key (RFC 6455 §4.2.2).
    public static func acceptValue(for key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
        return Data(digest).base64EncodedString()
    }

    /// Decodes base64 in either alphabet, padded or not.
    public static func decodeLenientBase64(_ text: String) -> String? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        guard let data = Data(base64Encoded: s) else { return nil }
        return String(data: data, encoding: .utf8)
    }
}
