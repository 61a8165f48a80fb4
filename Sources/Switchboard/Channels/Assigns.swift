/// Values an application attaches to a connection (at connect) or to a channel (in its callbacks):
/// the user id, roles, a room name. Keys are strings; values any `Sendable` type, read back typed.
///
/// ```swift
/// assigns["user_id"] = 42
/// let id: Int? = assigns["user_id"]
/// ```
public struct Assigns: Sendable {
    var storage: [String: any Sendable] = [:]

    public init() {}

    /// The value stored under `key`, if it has type `T`.
    public subscript<T: Sendable>(key: String) -> T? {
        get { storage[key] as? T }
        set { storage[key] = newValue }
    }

    /// The value stored under `key`, of any type.
    public func value(forKey key: String) -> (any Sendable)? { storage[key] }

    /// The keys that have a value.
    public var keys: [String] { Array(storage.keys) }
}
