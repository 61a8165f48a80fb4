import NIOCore
import Testing

@testable import Switchboard

/// Bytes from a space-separated hex string, e.g. `"00 01 ff"`.
func hexBytes(_ hex: String) -> [UInt8] {
    hex.split(separator: " ").map { part in
        guard let byte = UInt8(part, radix: 16) else { fatalError("bad hex byte \(part)") }
        return byte
    }
}

/// A lowercase space-separated hex rendering (readable failure messages).
func hexString(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { b in
        let s = String(b, radix: 16)
        return s.count == 1 ? "0" + s : s
    }.joined(separator: " ")
}

extension ByteBuffer {
    /// The readable bytes (from the reader index to the writer index).
    var readableArray: [UInt8] { Array(readableBytesView) }
}

/// The UTF-8 bytes of a string.
func utf8(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Runs a decoder call and returns the typed error it throws (nil when it succeeds).
func decodeError(_ body: () throws(PhoenixDecodeError) -> Message) -> PhoenixDecodeError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

extension PhoenixDecodeError {
    var isInvalidMessage: Bool {
        if case .invalidMessage = self { return true }
        return false
    }

    var isUnsupportedBinary: Bool {
        if case .unsupportedBinary = self { return true }
        return false
    }
}
