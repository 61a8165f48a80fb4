import NIOCore
import Testing

@testable import SwitchboardHummingbird

@Suite("Idempotent publishes")
struct IdempotencyTests {
    func answer(_ status: Int, _ text: String) -> IdempotentPublishes.Answer {
        .init(status: status, body: ByteBuffer(string: text))
    }

    @Test("a key answers as the first time within the window, and is forgotten after it")
    func window() {
        let cache = IdempotentPublishes(window: .seconds(10))
        let start = ContinuousClock.now
        var made = 0
        let make = { () -> IdempotentPublishes.Answer in
            made += 1
            return self.answer(202, "first \(made)")
        }
        let body = ByteBuffer(string: "{}")
        #expect(cache.answer(key: "k", body: body, now: start, make) == answer(202, "first 1"))
        #expect(cache.answer(key: "k", body: body, now: start + .seconds(9), make) == answer(202, "first 1"))
        #expect(made == 1)
        #expect(cache.answer(key: "k", body: body, now: start + .seconds(11), make) == answer(202, "first 2"))
        #expect(cache.answer(key: "k", body: ByteBuffer(string: "{\"x\":1}"), now: start + .seconds(12), make).status == 422)
    }

    @Test("server errors and bad keys of the API are not remembered; the oldest keys go past the capacity")
    func limits() {
        let cache = IdempotentPublishes(window: .seconds(60), capacity: 2)
        let now = ContinuousClock.now
        let body = ByteBuffer(string: "{}")
        var calls = 0
        for status in [500, 401, 202] {
            _ = cache.answer(key: "e", body: body, now: now) {
                calls += 1
                return answer(status, "\(status)")
            }
        }
        #expect(calls == 3)
        for key in ["a", "b", "c"] { _ = cache.answer(key: key, body: body, now: now) { answer(202, key) } }
        #expect(cache.answer(key: "e", body: body, now: now) { answer(202, "again") } == answer(202, "again"), "e was forgotten")
        #expect(IdempotentPublishes.validKey("order-42_x.y"))
        #expect(!IdempotentPublishes.validKey(""))
        #expect(!IdempotentPublishes.validKey("with space"))
        #expect(!IdempotentPublishes.validKey(String(repeating: "k", count: 256)))
    }
}
