/// A message that could not be understood; answered to the client with its code and message.
public struct PlainMessageError: Error, Sendable {
    public var code: String
    public var message: String
    public init(code: String = "invalid_message", _ message: String) {
        self.code = code
        self.message = message
    }
}
