#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ends the process at once (the watchdog's last resort).
func terminateProcess(_ code: Int32) -> Never {
    exit(code)
}

/// The one-line machine-readable summary: a JSON object whose keys keep their insertion order.
struct SummaryLine {
    private var members: [String] = []

    mutating func add(_ key: String, _ value: Int) { members.append("\(JSONText.string(key)):\(value)") }
    mutating func add(_ key: String, _ value: Int?) { members.append("\(JSONText.string(key)):\(value.map { String($0) } ?? "null")") }
    mutating func add(_ key: String, _ value: Double, digits: Int = 3) { members.append("\(JSONText.string(key)):\(Output.fixed(value, digits))") }
    mutating func add(_ key: String, _ value: Double?, digits: Int = 3) {
        members.append("\(JSONText.string(key)):\(value.map { Output.fixed($0, digits) } ?? "null")")
    }
    mutating func add(_ key: String, _ value: String) { members.append("\(JSONText.string(key)):\(JSONText.string(value))") }
    mutating func add(_ key: String, _ value: Bool) { members.append("\(JSONText.string(key)):\(value)") }

    var text: String { "SUMMARY {" + members.joined(separator: ",") + "}" }
}
