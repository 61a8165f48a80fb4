import Crypto
import DequeModule
import NIOCore
import Switchboard
import Synchronization

/// The answers of recent publishes made with an `Idempotency-Key`, so a retried publish is
/// delivered once and answered as the first time (same status, same body).
///
/// A key is remembered for `window` after its first use, with a hash of its request body: the
/// same key with another body is refused (422 `idempotency_key_reused`). Answers are made under
/// the lock, so concurrent retries wait for the first and get its answer. At most `capacity`
/// keys are kept; beyond that the oldest are forgotten early. One node's memory: with several
/// nodes, a retry that reaches another node is not recognised.
public final class IdempotentPublishes: Sendable {
    /// One remembered answer.
    public struct Answer: Sendable, Equatable {
        public var status: Int
        public var body: ByteBuffer
    }

    struct Entry {
        var bodyHash: [UInt8]
        var answer: Answer
        var expires: ContinuousClock.Instant
    }

    struct State {
        var entries: [String: Entry] = [:]
        var order = Deque<(key: String, expires: ContinuousClock.Instant)>()
    }

    public let window: Duration
    public let capacity: Int
    let state = Mutex(State())

    public init(window: Duration = .seconds(300), capacity: Int = 100_000) {
        self.window = window
        self.capacity = max(1, capacity)
    }

    /// The remembered answer for `key` and `body`, or the one `make` gives (then remembered,
    /// unless it is a server error or an authentication failure, which a retry may get past).
    func answer(key: String, body: ByteBuffer, now: ContinuousClock.Instant = .now, _ make: () -> Answer) -> Answer {
        let hash = Array(SHA256.hash(data: Array(body.readableBytesView)))
        return state.withLock { s in
            while let first = s.order.first, first.expires <= now || s.order.count > capacity {
                s.order.removeFirst()
                if let entry = s.entries[first.key], entry.expires == first.expires { s.entries[first.key] = nil }
            }
            if let entry = s.entries[key], entry.expires > now {
                guard entry.bodyHash == hash else {
                    return Answer(
                        status: 422,
                        body: JSONWriter.buffer(
                            APIError(.unprocessableContent, "idempotency_key_reused", "this Idempotency-Key was used with another request body").body
                        )
                    )
                }
                return entry.answer
            }
            let answer = make()
            if answer.status < 500, answer.status != 401 {
                let expires = now + window
                s.entries[key] = Entry(bodyHash: hash, answer: answer, expires: expires)
                s.order.append((key, expires))
            }
            return answer
        }
    }

    /// Checks a header value: 1 to 255 visible ASCII characters.
    static func validKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= 255 && key.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }
}

extension HubAPI {
    /// `POST /api/broadcast`'s answer, with or without an `Idempotency-Key` (both the route and
    /// the on-loop endpoint answer through this).
    func publishAnswer(body: ByteBuffer, idempotencyKey: String?) -> IdempotentPublishes.Answer {
        func make() -> IdempotentPublishes.Answer {
            do {
                return .init(status: 202, body: JSONWriter.buffer(Self.published(try publish(body: body))))
            } catch let error as APIError {
                return .init(status: Int(error.status.code), body: JSONWriter.buffer(error.body))
            } catch {
                return .init(status: 500, body: JSONWriter.buffer(APIError(.internalServerError, "internal_error", "\(error)").body))
            }
        }
        guard let key = idempotencyKey else { return make() }
        guard IdempotentPublishes.validKey(key) else {
            return .init(
                status: 400,
                body: JSONWriter.buffer(APIError(.badRequest, "invalid_request", "Idempotency-Key must be 1 to 255 visible ASCII characters").body)
            )
        }
        return idempotentPublishes.answer(key: key, body: body, make)
    }
}
