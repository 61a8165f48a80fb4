#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Printing: the report on stdout, progress lines on stderr, number formatting without Foundation.
enum Output {
    static func line(_ text: String) {
        print(text)
    }

    static func progress(_ text: String, since start: UInt64) {
        let elapsed = Double(MonotonicClock.nanoseconds() - start) / 1e9
        toStandardError("[\(pad(fixed(elapsed, 1), 6))s] \(text)\n")
    }

    static func warn(_ text: String) {
        toStandardError("switchboard-bench: \(text)\n")
    }

    /// Flushes stdout (and every other stdio stream).
    static func flush() {
        fflush(nil)
    }

    private static func toStandardError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { break }
                offset += written
            }
        }
    }

    /// `value` with `digits` decimals.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "0" }
        guard abs(value) < 1e15 else { return String(Int64(value)) }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let whole = scaled / Int64(scale)
        var text = (value < 0 && scaled != 0 ? "-" : "") + String(whole)
        if digits > 0 {
            let fraction = String(scaled % Int64(scale))
            text += "." + String(repeating: "0", count: digits - fraction.count) + fraction
        }
        return text
    }

    /// An integer with thin thousands separators (1 234 567), for the human report.
    static func grouped(_ value: Int) -> String {
        let digits = String(abs(value))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out += " " }
            out.append(c)
        }
        return (value < 0 ? "-" : "") + out
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}
