import Foundation
import NIOCore
import NIOPosix

/// A real `redis-server` on a free 127.0.0.1 port, no persistence, for one test. Always stop it
/// (``withRedisServer(_:)`` does, also when the test throws).
public final class RedisServerProcess: @unchecked Sendable {
    // @unchecked: `process` is only touched by the test that owns this object, from one task at a time.
    public let port: Int
    let extraArguments: [String]
    private var process: Process?
    static let executable = ProcessInfo.processInfo.environment["REDIS_SERVER"] ?? "/usr/bin/redis-server"

    /// - Parameter extraArguments: more `redis-server` options, e.g. `["--requirepass", "secret"]`.
    public init(extraArguments: [String] = []) throws {
        self.extraArguments = extraArguments
        port = try Self.freePort()
    }

    /// Starts the server on ``port`` and waits (at most 10 s) until it accepts connections.
    public func start() async throws {
        precondition(process == nil, "already running")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments =
            ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
            + extraArguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if await Self.accepts(port: port) { return }
            if !process.isRunning { break }  // e.g. the port was taken after all
            try await Task.sleep(for: .milliseconds(20))
        }
        stop()
        throw RedisProcessError(message: "redis-server did not start on port \(port)")
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to exit.
    public func stop() {
        guard let process else { return }
        self.process = nil
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    /// Sends a signal to the server (e.g. SIGSTOP to freeze it, SIGCONT to resume).
    public func signal(_ signal: Int32) throws {
        guard let process, process.isRunning else { throw RedisProcessError(message: "redis-server is not running") }
        kill(process.processIdentifier, signal)
    }

    deinit { stop() }

    public static func accepts(port: Int) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(200))
                .connect(host: "127.0.0.1", port: port).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }

    /// A port nothing listens on right now. Chosen below Linux's ephemeral range (32768–60999), so
    /// the kernel does not hand it to some outgoing connection between this check and the server's
    /// bind (or while the server is down for a restart).
    public static func freePort() throws -> Int {
        for _ in 0..<50 {
            let candidate = Int.random(in: 20000..<32000)
            guard
                let channel = try? ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .bind(host: "127.0.0.1", port: candidate).wait()
            else { continue }
            try? channel.close().wait()
            return candidate
        }
        throw RedisProcessError(message: "no free port found")
    }
}

public struct RedisProcessError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}

/// Runs `body` with a started `redis-server`, killing it afterwards whatever happens.
public func withRedisServer<T>(arguments: [String] = [], _ body: (RedisServerProcess) async throws -> T) async throws -> T {
    let server = try RedisServerProcess(extraArguments: arguments)
    try await server.start()
    defer { server.stop() }
    return try await body(server)
}
