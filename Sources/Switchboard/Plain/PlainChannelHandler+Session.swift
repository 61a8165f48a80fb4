import Logging

extension PlainChannelHandler {
    /// The connect decision for one request, as every transport takes it: a disallowed origin is
    /// refused first (403), then `connect` decides; a thrown `ConnectRefusal` refuses with its
    /// status and reason, any other error with 403 "connection refused".
    public func accept(_ request: ConnectRequest, channel: PlainChannel, checkOrigin: OriginPolicy) async -> PlainConnectResult<ClientContext> {
        if let refusal = checkOrigin.refusal(for: request) {
            return .refuse(status: refusal.status, reason: refusal.reason ?? "origin not allowed")
        }
        do {
            return try await connect(request, channel: channel)
        } catch let refusal as ConnectRefusal {
            return .refuse(status: refusal.status, reason: refusal.reason ?? "connection refused")
        } catch {
            return .refuse(status: 403, reason: "connection refused")
        }
    }

    /// The session of one accepted client on an open transport: its messages go to this
    /// handler's callbacks (one at a time, in order), and it listens to the channel-wide topic.
    /// `connection` should carry `PlainChannel.assigns(for: context)` so filtered broadcasts see
    /// the client's context.
    public func makeSession(
        context: ClientContext,
        request: ConnectRequest,
        channel: PlainChannel,
        transport: any Transport,
        connection: Connection,
        format: FrameFormat,
        maxPendingMessages: Int,
        logger: Logger
    ) -> any Session {
        let core = PlainClientCore(
            hub: channel.hub,
            transport: transport,
            connection: connection,
            format: format,
            maxPendingMessages: maxPendingMessages,
            logger: logger
        )
        let client = PlainClient(context: context, request: request, channel: channel, core: core)
        core.onStart = {
            do {
                try await self.connected(client)
            } catch {
                logger.debug("plain channel connected handler failed", metadata: ["error": "\(error)"])
                client.close(code: 1011, reason: "connect handler failed")
            }
        }
        core.onMessage = { message in
            do {
                try await self.message(message, from: client)
            } catch let error as PlainMessageError {
                client.send(json: ["error": ["code": .string(error.code), "message": .string(error.message)]])
            } catch {
                client.send(json: ["error": ["code": "handler_error", "message": .string("\(error)")]])
            }
        }
        core.onClose = { await self.disconnected(client) }
        core.subscribe(to: channel.topic)
        return core
    }
}
