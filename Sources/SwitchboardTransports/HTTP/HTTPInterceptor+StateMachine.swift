import NIOCore
import NIOHTTP1
import Switchboard

extension HTTPInterceptor {
    /// Where a request head goes, as the interceptor's endpoints decide it.
    package enum Route: Equatable {
        /// One of ours (`InterceptedEndpoint` at this index), whose body may be at most `maxBodySize`;
        /// an oversized body is drained and answered 413 (`drainsOversized`) or answered at once.
        case ours(endpoint: Int, maxBodySize: Int, drainsOversized: Bool)
        /// The HTTP server's (Hummingbird's router).
        case server
        /// A first request that asks for an upgrade: NIO's upgrade handler takes it from here.
        case upgradeHandler
    }

    /// The interceptor's logic, without a channel: every event is a `mutating func` returning what
    /// the handler must do. NIO's `HTTPServerPipelineHandler` sits in front, so requests arrive
    /// one at a time and the next one only after the previous answer's `.end` was written.
    package struct StateMachine {
        enum State: Equatable {
            /// Between requests (the request-head timer runs).
            case idle
            /// A request for the HTTP server: until both its `.end` arrived and its answer's `.end` went out.
            case passing(requestEnded: Bool, answered: Bool)
            /// Reading one of our requests.
            case collecting(endpoint: Int, head: HTTPRequestHead, body: ByteBuffer?, maxBodySize: Int, drainsOversized: Bool)
            /// Reading (and dropping) the rest of an oversized body, to answer 413 once it is all read
            /// (so that closing does not reset the connection under the client's answer).
            case discarding(endpoint: Int, head: HTTPRequestHead, bytes: Int)
            /// One of our requests is being answered.
            case answering
            /// The connection is no longer ours: a stream or WebSocket took it over, or it closes.
            case done
        }

        /// Most bytes of an oversized body read (and dropped) before answering; beyond, the answer
        /// goes out at once and the connection closes.
        static let maxDiscardedBytes = 64 << 20

        private(set) var state = State.idle
        /// The server is shutting down: nothing new starts, the connection closes once idle.
        private(set) var shuttingDown = false

        var isIdle: Bool { state == .idle }

        enum ReadAction: Equatable {
            /// Pass the part on to the HTTP server.
            case forward
            /// Pass the head on and leave the pipeline (NIO's upgrade handler decides; the bytes after an
            /// upgrade are not HTTP).
            case stepAside
            /// Nothing to do (a body part kept, or dropped).
            case none
            /// Our request is complete: the endpoint answers it.
            case answer(endpoint: Int, head: HTTPRequestHead, body: ByteBuffer?)
            /// Our request's body is over the endpoint's limit: the endpoint answers 413, then the
            /// connection closes when `close` (the rest of the body was not read).
            case answerTooLarge(endpoint: Int, head: HTTPRequestHead, close: Bool)
            /// Answer with this status and `{"error": message}`; close after it when `close`.
            case respond(HTTPResponseStatus, String, close: Bool)
            /// Shutdown has begun: 503 and close.
            case refuseShuttingDown
        }

        /// A request head arrived (the handler routes it first).
        mutating func head(_ head: HTTPRequestHead, route: Route) -> ReadAction {
            switch state {
            case .idle:
                if shuttingDown {
                    state = .answering
                    return .refuseShuttingDown
                }
                switch route {
                case .server:
                    state = .passing(requestEnded: false, answered: false)
                    return .forward
                case .upgradeHandler:
                    state = .done
                    return .stepAside
                case .ours(let endpoint, let maxBodySize, let drainsOversized):
                    state = .collecting(endpoint: endpoint, head: head, body: nil, maxBodySize: maxBodySize, drainsOversized: drainsOversized)
                    return .none
                }
            case .collecting, .discarding:
                // NIO's decoder ended the previous request before this head; a head here is a bug
                // of ours or the peer's: answer it as malformed.
                state = .answering
                return .respond(.badRequest, "request head inside a request body", close: true)
            case .passing, .answering, .done:
                return .none  // the pipeline handler holds heads back; after .done nothing is read
            }
        }

        /// A body part arrived.
        mutating func body(_ chunk: ByteBuffer) -> ReadAction {
            switch state {
            case .passing:
                return .forward
            case .collecting(let endpoint, let head, var body, let maxBodySize, let drainsOversized):
                if (body?.readableBytes ?? 0) + chunk.readableBytes > maxBodySize {
                    if drainsOversized {
                        state = .discarding(endpoint: endpoint, head: head, bytes: 0)
                        return .none
                    }
                    state = .answering
                    return .answerTooLarge(endpoint: endpoint, head: head, close: true)
                }
                var chunk = chunk
                if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
                state = .collecting(endpoint: endpoint, head: head, body: body, maxBodySize: maxBodySize, drainsOversized: drainsOversized)
                return .none
            case .discarding(let endpoint, let head, let bytes):
                if bytes + chunk.readableBytes > Self.maxDiscardedBytes {
                    state = .answering
                    return .answerTooLarge(endpoint: endpoint, head: head, close: true)
                }
                state = .discarding(endpoint: endpoint, head: head, bytes: bytes + chunk.readableBytes)
                return .none
            case .idle, .answering, .done:
                return .none
            }
        }

        /// A request's `.end` arrived.
        mutating func end() -> ReadAction {
            switch state {
            case .passing(_, let answered):
                state = answered ? .idle : .passing(requestEnded: true, answered: false)
                return .forward
            case .collecting(let endpoint, let head, let body, _, _):
                state = .answering
                return .answer(endpoint: endpoint, head: head, body: body)
            case .discarding(let endpoint, let head, _):
                state = .answering
                return .answerTooLarge(endpoint: endpoint, head: head, close: false)
            case .idle, .answering, .done:
                return .none
            }
        }

        enum WrittenAction: Equatable {
            case none
            /// The connection is idle again: start waiting for the next head.
            case armHeadTimer
            /// Idle during shutdown: close now.
            case close
        }

        /// An answer's `.end` went out (the HTTP server's or ours).
        mutating func answerEnded() -> WrittenAction {
            switch state {
            case .passing(let requestEnded, _):
                guard requestEnded else {
                    state = .passing(requestEnded: false, answered: true)
                    return .none
                }
                state = .idle
            case .answering:
                state = .idle
            case .idle, .collecting, .discarding, .done:
                return .none
            }
            return shuttingDown ? .close : .armHeadTimer
        }

        /// Our endpoint handed the request to the HTTP server after all (a plain-channel stream
        /// request that no route took): its answer is now the server's.
        mutating func passedOn() {
            state = .passing(requestEnded: true, answered: false)
        }

        /// A stream or WebSocket took the connection over, or it is closing.
        mutating func handedOver() {
            state = .done
        }

        enum QuiesceAction: Equatable {
            /// Idle: close now.
            case close
            /// Ours is being answered: tell the endpoint (a parked poll answers at once), then close
            /// after the answer, within the grace period.
            case answerNow
            /// A request is in progress: close after its answer, within the grace period.
            case closeAfterAnswer
            /// Not an HTTP connection any more, or already shutting down.
            case none
        }

        /// The server is shutting down.
        mutating func quiesce() -> QuiesceAction {
            guard !shuttingDown else { return .none }
            shuttingDown = true
            switch state {
            case .idle: return .close
            case .answering: return .answerNow
            case .passing, .collecting, .discarding: return .closeAfterAnswer
            case .done: return .none
            }
        }

        enum ParseErrorAction: Equatable {
            /// Answer 400 `{"error": "malformed HTTP request"}` and close.
            case respondAndClose
            /// Ours is being answered: another answer cannot follow it; close.
            case close
            /// Pass the error on: the connection is not HTTP any more, or the HTTP server is reading
            /// the request that broke (Hummingbird answers its own requests' parse errors).
            case forward
        }

        /// NIO's decoder could not parse the request. The pipeline handler holds an error back while
        /// an answer is owed, so one that follows a complete request arrives once it is answered.
        mutating func parseError() -> ParseErrorAction {
            switch state {
            case .done, .passing:
                return .forward
            case .answering:
                state = .done
                return .close
            case .idle, .collecting, .discarding:
                state = .answering
                return .respondAndClose
            }
        }

        enum HeadTimeoutAction: Equatable {
            case none
            /// Part of a head arrived: 408 with a reason, then close.
            case respondAndClose
            /// Nothing arrived: close quietly.
            case close
        }

        /// The request-head timer fired; `partial` when bytes arrived since it was armed.
        mutating func headTimedOut(partial: Bool) -> HeadTimeoutAction {
            guard state == .idle else { return .none }
            if partial {
                state = .answering
                return .respondAndClose
            }
            state = .done
            return .close
        }
    }
}
