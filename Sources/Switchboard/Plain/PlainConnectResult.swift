/// The decision taken before the upgrade.
public enum PlainConnectResult<ClientContext: Sendable>: Sendable {
    /// Upgrade; `context` stays with the client until it disconnects.
    case accept(ClientContext)
    /// Answer the upgrade request with this HTTP status and `{"error": reason}`; no socket is opened.
    case refuse(status: Int = 403, reason: String)

    /// The refusal, if this is one.
    public var refusal: ConnectRefusal? {
        if case .refuse(let status, let reason) = self { return ConnectRefusal(status: status, reason: reason) }
        return nil
    }
}
