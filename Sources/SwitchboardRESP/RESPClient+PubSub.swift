import NIOCore

extension RESPClient {
    /// Subscribes to a Redis channel. The first local subscription of a channel sends `SUBSCRIBE`
    /// (now, or as soon as connected); further ones only count. `handler` runs on ``eventLoop``
    /// for every message, in the order Redis sent them. Returns at once; never blocks.
    public func subscribe(channel: String, handler: @escaping @Sendable (RESPPubSubMessage) -> Void) -> RESPSubscription {
        add(RESPSubscription(kind: .channel, name: channel, id: nextSubscriptionID.wrappingAdd(1, ordering: .relaxed).newValue), handler)
    }

    /// Subscribes to every channel matching a glob-style pattern (`PSUBSCRIBE`), reference counted like channels.
    public func subscribe(pattern: String, handler: @escaping @Sendable (RESPPubSubMessage) -> Void) -> RESPSubscription {
        add(RESPSubscription(kind: .pattern, name: pattern, id: nextSubscriptionID.wrappingAdd(1, ordering: .relaxed).newValue), handler)
    }

    /// Ends a local subscription; the last one of a channel (or pattern) sends `UNSUBSCRIBE`. Idempotent.
    public func unsubscribe(_ subscription: RESPSubscription) {
        eventLoop.execute {
            let key = SubscriptionKey(kind: subscription.kind, name: subscription.name)
            guard self.state.value.subscriptions[key]?.removeValue(forKey: subscription.id) != nil else { return }
            if self.state.value.subscriptions[key]?.isEmpty == true {
                self.state.value.subscriptions[key] = nil
                if self.state.value.channel != nil {
                    self.writePubSub(subscription.kind == .channel ? "UNSUBSCRIBE" : "PUNSUBSCRIBE", [subscription.name])
                }
            }
        }
    }

    /// The channels and patterns this client wants to be subscribed to, with their local counts.
    public func subscriptionCounts() async throws -> [RESPSubscription.Kind: [String: Int]] {
        try await eventLoop.submit {
            var result: [RESPSubscription.Kind: [String: Int]] = [:]
            for (key, handlers) in self.state.value.subscriptions { result[key.kind, default: [:]][key.name] = handlers.count }
            return result
        }.get()
    }

    func add(_ subscription: RESPSubscription, _ handler: @escaping @Sendable (RESPPubSubMessage) -> Void) -> RESPSubscription {
        eventLoop.execute {
            let key = SubscriptionKey(kind: subscription.kind, name: subscription.name)
            let first = self.state.value.subscriptions[key] == nil
            self.state.value.subscriptions[key, default: [:]][subscription.id] = handler
            if first, self.state.value.channel != nil {
                self.writePubSub(subscription.kind == .channel ? "SUBSCRIBE" : "PSUBSCRIBE", [subscription.name])
            }
        }
        return subscription
    }

    /// On the loop, after connecting: one `SUBSCRIBE` / `PSUBSCRIBE` for everything wanted (in chunks).
    func resubscribeAll() {
        let keys = state.value.subscriptions.keys
        let channels = keys.filter { $0.kind == .channel }.map(\.name)
        let patterns = keys.filter { $0.kind == .pattern }.map(\.name)
        for chunk in stride(from: 0, to: channels.count, by: 1000) {
            writePubSub("SUBSCRIBE", Array(channels[chunk..<min(chunk + 1000, channels.count)]))
        }
        for chunk in stride(from: 0, to: patterns.count, by: 1000) {
            writePubSub("PSUBSCRIBE", Array(patterns[chunk..<min(chunk + 1000, patterns.count)]))
        }
    }

    func writePubSub(_ name: String, _ targets: [String]) {
        let promise = eventLoop.makePromise(of: RESPValue.self)
        let logger = self.logger
        promise.futureResult.whenFailure { error in
            // A lost connection is handled by re-subscribing after the reconnect.
            if let clientError = error as? RESPClientError, clientError.code == .connectionLost || clientError.code == .notConnected { return }
            logger.warning("Redis pub/sub command failed", metadata: ["redis.command": "\(name)", "error": "\(error)"])
        }
        write([
            RESPRequest(
                command: RESPCommand(name, arguments: targets.map { .string($0) }),
                promise: promise,
                deadline: NIODeadline.now() + configuration.commandTimeout
            )
        ])
    }

    /// On the loop: a push from the server. Messages go to the handlers of their channel or pattern.
    func dispatch(_ push: RESPValue) {
        guard case .push(let items) = push, let kind = items.first?.string else { return }
        let message: RESPPubSubMessage
        let key: SubscriptionKey
        switch kind {
        case "message" where items.count == 3:
            guard let channel = items[1].string, case .bulkString(let payload) = items[2] else { return }
            message = RESPPubSubMessage(channel: channel, pattern: nil, payload: payload)
            key = SubscriptionKey(kind: .channel, name: channel)
        case "pmessage" where items.count == 4:
            guard let pattern = items[1].string, let channel = items[2].string, case .bulkString(let payload) = items[3] else { return }
            message = RESPPubSubMessage(channel: channel, pattern: pattern, payload: payload)
            key = SubscriptionKey(kind: .pattern, name: pattern)
        default:
            return
        }
        guard let handlers = state.value.subscriptions[key] else { return }
        for handler in handlers.values { handler(message) }
    }
}
