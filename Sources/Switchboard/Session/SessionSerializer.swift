import NIOCore

/// How a Phoenix session writes its own messages (replies, pushes, channel ends) for its
/// transport. Broadcasts do not come through here: the hub encodes them once per `FrameFormat`.
///
/// `PhoenixSerializer` (V1, V2) writes Phoenix frames for WebSocket and long-poll;
/// `EventStreamSerializer` writes Server-Sent Events. A message with no form on the transport
/// (a binary push on V1, a reply on SSE) encodes to nil and is not sent.
public protocol SessionSerializer: Sendable {
    /// A reply (`phx_reply`) to the client message whose ref was `ref`.
    func encodeReply(joinRef: JSONValue, ref: JSONValue, topic: String, status: String, response: Payload) -> EncodedFrame?
    /// A push from a channel to its own client.
    func encodePush(joinRef: JSONValue, topic: String, event: String, payload: Payload) -> EncodedFrame?
    /// A channel's end: `phx_close` (left, stopped, replaced) or `phx_error` (crashed).
    func encodeChannelEnd(joinRef: JSONValue, topic: String, crashed: Bool) -> EncodedFrame?
    /// A push whose payload is JSON text already encoded (a presence snapshot shared by every
    /// joiner), written as it is. The default parses it and calls `encodePush(…payload:)`.
    func encodePush(joinRef: JSONValue, topic: String, event: String, jsonText: ByteBuffer) -> EncodedFrame?
}

extension SessionSerializer {
    public func encodePush(joinRef: JSONValue, topic: String, event: String, jsonText: ByteBuffer) -> EncodedFrame? {
        guard let json = try? JSONParser.parse(jsonText) else { return nil }
        return encodePush(joinRef: joinRef, topic: topic, event: event, payload: .json(json))
    }
}

extension PhoenixSerializer: SessionSerializer {
    public func encodePush(joinRef: JSONValue, topic: String, event: String, jsonText: ByteBuffer) -> EncodedFrame? {
        encodeJSON(joinRef: joinRef, ref: .null, topic: topic, event: event, payloadText: jsonText)
    }

    public func encodeChannelEnd(joinRef: JSONValue, topic: String, crashed: Bool) -> EncodedFrame? {
        // phx_close / phx_error carry the join ref in both join_ref and ref.
        encodeJSON(
            joinRef: joinRef,
            ref: joinRef,
            topic: topic,
            event: crashed ? PhoenixEvent.error : PhoenixEvent.close,
            payload: crashed ? ["reason": "channel_crash"] : .emptyObject
        )
    }
}

/// Server-Sent Events for a Phoenix session: a push is an event named for its event, with its
/// JSON payload as data. The client sends nothing, so there is nothing to reply to, and a
/// channel's end is told by the session ending the stream (`switchboard:close`), not by a frame.
public struct EventStreamSerializer: SessionSerializer {
    public init() {}

    public func encodeReply(joinRef: JSONValue, ref: JSONValue, topic: String, status: String, response: Payload) -> EncodedFrame? { nil }

    public func encodePush(joinRef: JSONValue, topic: String, event: String, payload: Payload) -> EncodedFrame? {
        guard case .json(let json) = payload else { return nil }  // binary has no SSE form
        return EncodedFrame(bytes: EventStreamEncoding.event(id: nil, event: event, data: json), isBinary: false)
    }

    public func encodePush(joinRef: JSONValue, topic: String, event: String, jsonText: ByteBuffer) -> EncodedFrame? {
        var buffer = ByteBufferAllocator().buffer(capacity: 32 + event.utf8.count + jsonText.readableBytes)
        EventStreamEncoding.writeEvent(id: nil, event: event, dataText: jsonText, into: &buffer)
        return EncodedFrame(bytes: buffer, isBinary: false)
    }

    public func encodeChannelEnd(joinRef: JSONValue, topic: String, crashed: Bool) -> EncodedFrame? { nil }
}
