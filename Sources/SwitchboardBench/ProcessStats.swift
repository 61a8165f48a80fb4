#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// CPU time and resident memory of a process, from /proc (Linux).
struct ProcessSample: Sendable {
    /// User + system CPU seconds since the process started.
    var cpuSeconds: Double
    var rssKiB: Int
    var takenAt: UInt64
}

enum ProcessStats {
    /// The server's sample: the process and its child processes (nginx's workers, say) summed.
    static func sampleWithChildren(pid: Int32) -> ProcessSample? {
        guard var total = sample(pid: pid) else { return nil }
        let children = readFile("/proc/\(pid)/task/\(pid)/children") ?? ""
        for child in children.split(separator: " ").compactMap({ Int32($0.trimmingSpaces) }) {
            guard let sample = sample(pid: child) else { continue }
            total.cpuSeconds += sample.cpuSeconds
            total.rssKiB += sample.rssKiB
        }
        return total
    }

    /// One process's sample, from /proc/<pid>/stat (utime, stime) and /proc/<pid>/status (VmRSS).
    static func sample(pid: Int32) -> ProcessSample? {
        guard let stat = readFile("/proc/\(pid)/stat"), let status = readFile("/proc/\(pid)/status") else { return nil }
        // The command name may contain spaces and parentheses: the fields start after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var rss = 0
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            rss = Int(line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? 0
        }
        return ProcessSample(cpuSeconds: (utime + stime) / ticks, rssKiB: rss, takenAt: MonotonicClock.nanoseconds())
    }

    /// This process's own CPU use (getrusage).
    static func ownCPU() -> (user: Double, system: Double) {
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return (seconds(usage.ru_utime), seconds(usage.ru_stime))
    }

    /// This process's own resident memory in KiB.
    static func ownRSSKiB() -> Int {
        sample(pid: getpid())?.rssKiB ?? 0
    }

    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension ProcessStats {
    /// Raises this process's soft limit on open files towards `needed` (up to the hard limit);
    /// returns the soft limit in force afterwards.
    static func raiseOpenFileLimit(to needed: Int) -> Int {
        var limit = rlimit()
        #if os(Linux)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return needed }
        if limit.rlim_cur < rlim_t(needed) {
            var raised = limit
            raised.rlim_cur = min(rlim_t(needed), limit.rlim_max)
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }
}
