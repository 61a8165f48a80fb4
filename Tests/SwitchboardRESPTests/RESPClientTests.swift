import NIOCore
import SwitchboardTestSupport
import Synchronization
import Testing

@testable import SwitchboardRESP

/// Against a real `redis-server` started by the test on a free port.
@Suite("RESP client against redis-server", .timeLimit(.minutes(1)))
struct RESPClientTests {
    @Test("HELLO 3, simple commands, and 1000 pipelined commands answered in order")
    func commandsAndPipelining() async throws {
        try await withRedisServer { server in
            try await withRunning(testClient(port: server.port)) { client in
                #expect(await eventually { client.isConnected })
                #expect(try await client.send(RESPCommand("PING")) == .simpleString("PONG"))
                #expect(try await client.send(RESPCommand("SET", "greeting", "hello")) == .simpleString("OK"))
                #expect(try await client.send(RESPCommand("GET", "greeting")) == .bulkString(ByteBuffer(string: "hello")))
                #expect(try await client.send(RESPCommand("GET", "missing")) == .null)
                let results = await client.send((0..<1000).map { _ in RESPCommand("INCR", "counter") })
                let values = results.map { try? $0.get().int }
                #expect(values == (1...1000).map { Int64($0) })
                // RESP3 types straight from Redis: a map and a double.
                _ = try await client.send(RESPCommand("HSET", "h", "f", "v"))
                #expect(
                    try await client.send(RESPCommand("HGETALL", "h"))
                        == .map([.init(key: .bulkString(ByteBuffer(string: "f")), value: .bulkString(ByteBuffer(string: "v")))])
                )
                _ = try await client.send(RESPCommand("ZADD", "z", "1.5", "m"))
                #expect(try await client.send(RESPCommand("ZSCORE", "z", "m")) == .double(1.5))
            }
        }
    }

    @Test("error replies throw RESPServerError with the Redis code; the connection keeps working")
    func errorReplies() async throws {
        try await withRedisServer { server in
            try await withRunning(testClient(port: server.port)) { client in
                #expect(await eventually { client.isConnected })
                _ = try await client.send(RESPCommand("SET", "s", "text"))
                await #expect(throws: RESPServerError.self) { _ = try await client.send(RESPCommand("LPUSH", "s", "x")) }
                do {
                    _ = try await client.send(RESPCommand("LPUSH", "s", "x"))
                } catch let error as RESPServerError {
                    #expect(error.code == "WRONGTYPE")
                }
                do {
                    _ = try await client.send(RESPCommand("NOSUCHCOMMAND"))
                    Issue.record("expected an error")
                } catch let error as RESPServerError {
                    #expect(error.code == "ERR")
                }
                // A failing command in the middle of a pipeline fails alone.
                let results = await client.send([RESPCommand("INCR", "n"), RESPCommand("INCR", "s"), RESPCommand("INCR", "n")])
                #expect(try results[0].get() == .integer(1))
                #expect(throws: RESPServerError.self) { try results[1].get() }
                #expect(try results[2].get() == .integer(2))
            }
        }
    }

    @Test("a command times out; the late reply is discarded and later replies still match")
    func timeout() async throws {
        try await withRedisServer { server in
            try await withRunning(testClient(port: server.port)) { client in
                #expect(await eventually { client.isConnected })
                let started = ContinuousClock.now
                do {
                    _ = try await client.send(RESPCommand("BLPOP", "empty", "1"), timeout: .milliseconds(200))
                    Issue.record("expected a timeout")
                } catch let error as RESPClientError {
                    #expect(error.code == .timeout)
                }
                #expect(ContinuousClock.now - started < .milliseconds(900))
                // Queued behind the blocked BLPOP; must get its own reply, not BLPOP's null.
                #expect(try await client.send(RESPCommand("ECHO", "after"), timeout: .seconds(5)) == .bulkString(ByteBuffer(string: "after")))
            }
        }
    }

    @Test("commands fail at once with notConnected while the client is not connected")
    func notConnected() async throws {
        let client = testClient(port: try RedisServerProcess.freePort())
        do {
            _ = try await client.send(RESPCommand("PING"))
            Issue.record("expected notConnected")
        } catch let error as RESPClientError {
            #expect(error.code == .notConnected)
        }
    }

    @Test("AUTH through HELLO and SELECT of a database; a wrong password never connects")
    func authAndSelect() async throws {
        try await withRedisServer(arguments: ["--requirepass", "s3cret"]) { server in
            let url = "redis://:s3cret@127.0.0.1:\(server.port)/3"
            var configuration = try RESPClient.Configuration(url: url)
            configuration.reconnectDelay = .milliseconds(20)
            try await withRunning(RESPClient(configuration: configuration)) { client in
                #expect(await eventually { client.isConnected })
                _ = try await client.send(RESPCommand("SET", "in3", "yes"))
                configuration.database = 0
                try await withRunning(RESPClient(configuration: configuration)) { (db0: RESPClient) async throws in
                    #expect(await eventually { db0.isConnected })
                    #expect(try await db0.send(RESPCommand("GET", "in3")) == .null)
                    #expect(try await db0.send(RESPCommand("SELECT", "3")) == .simpleString("OK"))
                    #expect(try await db0.send(RESPCommand("GET", "in3")) == .bulkString(ByteBuffer(string: "yes")))
                }
            }
            let wrong = testClient(port: server.port) { $0.password = "wrong" }
            try await withRunning(wrong) { client in
                #expect(await eventually { client.statistics.failedAttempts >= 2 })
                #expect(!client.isConnected)
                #expect(client.statistics.connections == 0)
            }
        }
    }

    @Test("subscriptions are reference counted: one SUBSCRIBE for many local subscribers, UNSUBSCRIBE after the last")
    func referenceCountedSubscriptions() async throws {
        try await withRedisServer { server in
            try await withRunning(testClient(port: server.port)) { subscriber in
                try await withRunning(testClient(port: server.port)) { publisher in
                    #expect(await eventually { subscriber.isConnected && publisher.isConnected })
                    let first = Inbox()
                    let second = Inbox()
                    let a = subscriber.subscribe(channel: "news") { first.append($0) }
                    let b = subscriber.subscribe(channel: "news") { second.append($0) }
                    #expect(try await eventually { try await numsub(publisher, "news") == 1 })
                    #expect(try await subscriber.subscriptionCounts()[.channel] == ["news": 2])
                    #expect(try await publisher.send(RESPCommand("PUBLISH", "news", "one")) == .integer(1))
                    #expect(await eventually { first.all == ["one"] && second.all == ["one"] })

                    subscriber.unsubscribe(a)
                    subscriber.unsubscribe(a)  // idempotent
                    #expect(try await subscriber.subscriptionCounts()[.channel] == ["news": 1])
                    #expect(try await numsub(publisher, "news") == 1)
                    _ = try await publisher.send(RESPCommand("PUBLISH", "news", "two"))
                    #expect(await eventually { second.all == ["one", "two"] })
                    #expect(first.all == ["one"])

                    subscriber.unsubscribe(b)
                    #expect(try await eventually { try await numsub(publisher, "news") == 0 })
                    // Regular commands still work on the connection that was subscribed (RESP3).
                    #expect(try await subscriber.send(RESPCommand("PING")) == .simpleString("PONG"))
                }
            }
        }
    }

    @Test("pattern subscriptions (PSUBSCRIBE) deliver with the matching pattern")
    func patterns() async throws {
        try await withRedisServer { server in
            try await withRunning(testClient(port: server.port)) { client in
                #expect(await eventually { client.isConnected })
                let inbox = Inbox()
                let seen = PatternBox()
                let subscription = client.subscribe(pattern: "room:*") { message in
                    inbox.append(message)
                    seen.record(message)
                }
                #expect(try await eventually { try await client.send(RESPCommand("PUBSUB", "NUMPAT")) == .integer(1) })
                _ = try await client.send(RESPCommand("PUBLISH", "room:1", "hi"))
                _ = try await client.send(RESPCommand("PUBLISH", "other", "no"))
                _ = try await client.send(RESPCommand("PUBLISH", "room:2", "ho"))
                #expect(await eventually { inbox.all == ["hi", "ho"] })
                #expect(seen.values == ["room:* room:1", "room:* room:2"])
                client.unsubscribe(subscription)
                #expect(try await eventually { try await client.send(RESPCommand("PUBSUB", "NUMPAT")) == .integer(0) })
            }
        }
    }

    @Test("Redis killed and restarted: in-flight commands fail, the client reconnects and re-subscribes")
    func restart() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.stop() }
        try await withRunning(testClient(port: server.port)) { client in
            #expect(await eventually { client.isConnected })
            let inbox = Inbox()
            _ = client.subscribe(channel: "alerts") { inbox.append($0) }
            #expect(try await eventually { try await numsub(client, "alerts") == 1 })

            // A command blocked in Redis when Redis dies fails with connectionLost, not a hang.
            async let blocked = outcome { try await client.send(RESPCommand("BLPOP", "nothing", "5"), timeout: .seconds(8)) }
            try await Task.sleep(for: .milliseconds(100))
            server.stop()
            switch await blocked {
            case .success(let value): Issue.record("expected connectionLost, got \(value)")
            case .failure(let error): #expect((error as? RESPClientError)?.code == .connectionLost)
            }
            #expect(await eventually { !client.isConnected })
            await #expect(throws: RESPClientError.self) { _ = try await client.send(RESPCommand("PING")) }

            try await server.start()
            #expect(await eventually { client.isConnected })
            #expect(try await eventually { try await numsub(client, "alerts") == 1 })
            _ = try await client.send(RESPCommand("PUBLISH", "alerts", "back"))
            #expect(await eventually { inbox.all == ["back"] })
            #expect(client.statistics.disconnections == 1)
            #expect(client.statistics.connections == 2)
        }
    }

    @Test("Redis URLs")
    func urls() throws {
        let full = try RESPClient.Configuration(url: "redis://user:p%40ss@example.com:6380/2")
        #expect(full.host == "example.com")
        #expect(full.port == 6380)
        #expect(full.username == "user")
        #expect(full.password == "p@ss")
        #expect(full.database == 2)
        let plain = try RESPClient.Configuration(url: "redis://127.0.0.1")
        #expect(plain.port == 6379 && plain.database == 0 && plain.password == nil)
        let ipv6 = try RESPClient.Configuration(url: "redis://[::1]:7000")
        #expect(ipv6.host == "::1" && ipv6.port == 7000)
        #expect(throws: RESPURLError.self) { try RESPClient.Configuration(url: "http://x") }
        #expect(throws: RESPURLError.self) { try RESPClient.Configuration(url: "redis://host:99999") }
        #expect(throws: RESPURLError.self) { try RESPClient.Configuration(url: "redis://host/x") }
    }
}

func outcome<T: Sendable>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}

/// Records "pattern channel" for each pattern message.
final class PatternBox: Sendable {
    let items = Mutex<[String]>([])
    func record(_ message: RESPPubSubMessage) { items.withLock { $0.append("\(message.pattern ?? "-") \(message.channel)") } }
    var values: [String] { items.withLock { $0 } }
}

@Suite("RESP client backoff")
struct RESPBackoffTests {
    @Test("reconnect delays double from the first delay up to the cap, with jitter between half and all of it")
    func backoff() {
        var configuration = RESPClient.Configuration()
        configuration.reconnectDelay = .milliseconds(100)
        configuration.maxReconnectDelay = .seconds(5)
        let client = RESPClient(configuration: configuration)
        for (failures, full) in [(0, 100), (1, 100), (2, 200), (3, 400), (6, 3200), (7, 5000), (100, 5000)] {
            for _ in 0..<20 {
                let delay = client.reconnectDelay(failures: failures)
                #expect(delay >= .milliseconds(full / 2) && delay <= .milliseconds(full), "failures \(failures): \(delay)")
            }
        }
    }
}
