extension ChannelSocket {
    /// Tracks this channel's presence in its topic under `key` (a user id, typically), with `meta`
    /// (a JSON object; the server adds `phx_ref`). Every subscriber of the topic receives it in a
    /// `presence_diff`; the entry goes by itself when the channel ends. The first track of a join
    /// instance also sends this client the topic's `presence_state` (right after the join reply
    /// when called in `join`).
    ///
    /// - Throws: `PresenceError.alreadyTracked` (use `updatePresence`), `.metaNotObject`,
    ///   `.metaTooLarge`, `.channelEnded`.
    public func track(key: String, meta: JSONValue = .emptyObject) throws(PresenceError) {
        try server.track(key: key, meta: meta)
    }

    /// Replaces the meta this channel tracks under `key` (a new `phx_ref`, the old one as
    /// `phx_ref_prev`): one diff with the key in both `joins` and `leaves`.
    ///
    /// - Throws: `PresenceError.notTracked`, `.metaNotObject`, `.metaTooLarge`, `.channelEnded`.
    public func updatePresence(key: String, meta: JSONValue) throws(PresenceError) {
        try server.updatePresence(key: key, meta: meta)
    }

    /// Stops tracking `key` now (no grace period); returns false when it was not tracked.
    @discardableResult
    public func untrack(key: String) -> Bool {
        server.untrack(key: key)
    }

    /// The keys this channel tracks.
    public var trackedKeys: Set<String> { server.trackedKeys }

    /// Sends this client the topic's presence (`presence_state`, or `presence_count` in a
    /// count-only topic) without tracking itself: for observers such as a member list. In `join`
    /// it follows the join reply.
    public func pushPresenceState() {
        server.pushPresenceState()
    }

    /// The hub's presence tracker (`list`, `count`, `events`).
    public var presence: Presence { hub.presence }
}
