import Foundation

/// The process metrics every Prometheus exporter has (the names of the Prometheus client
/// libraries' process collectors), read from `/proc` at each scrape, and `switchboard_build_info`.
enum ProcessMetrics {
    /// The Prometheus text for this process now. Values that cannot be read (not Linux) are left out.
    static func text(version: String) -> String {
        var out = ""
        func gauge(_ name: String, _ help: String, _ value: Double?, type: String = "gauge") {
            guard let value else { return }
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(format(value))\n"
        }
        let stat = selfStat()
        gauge("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", stat.map { $0.cpuSeconds }, type: "counter")
        gauge("process_resident_memory_bytes", "Resident memory size in bytes.", stat.map { $0.residentBytes })
        gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", stat.map { $0.virtualBytes })
        gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", stat.flatMap { $0.startTime })
        gauge("process_open_fds", "Number of open file descriptors.", openDescriptors())
        gauge("process_max_fds", "Maximum number of open file descriptors.", maxDescriptors())
        out += "# HELP switchboard_build_info The running Switchboard build (always 1).\n# TYPE switchboard_build_info gauge\n"
        out += "switchboard_build_info{version=\"\(version)\"} 1\n"
        return out
    }

    struct Stat {
        var cpuSeconds: Double
        var residentBytes: Double
        var virtualBytes: Double
        var startTime: Double?
    }

    /// `/proc/self/stat`: fields after the parenthesised command name (which may hold spaces).
    static func selfStat() -> Stat? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // Field 3 (state) is the first after ")"; utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
        let fields = text[text.index(after: close)...].split(separator: " ")
        func field(_ number: Int) -> Double? {
            let index = number - 3
            return index < fields.count ? Double(fields[index]) : nil
        }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        guard ticks > 0, let utime = field(14), let stime = field(15), let vsize = field(23), let rss = field(24) else { return nil }
        var start: Double?
        if let startTicks = field(22), let boot = bootTime() { start = boot + startTicks / ticks }
        return Stat(cpuSeconds: (utime + stime) / ticks, residentBytes: rss * pageSize, virtualBytes: vsize, startTime: start)
    }

    /// `btime` of `/proc/stat`: when the machine booted, in seconds since the epoch.
    static func bootTime() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst("btime ".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    static func openDescriptors() -> Double? {
        // The listing itself opens one descriptor, which is not counted in the result.
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")).map { Double(max(0, $0.count - 1)) }
    }

    static func maxDescriptors() -> Double? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        return Double(limit.rlim_cur)
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
