import NIOCore
import NIOHTTP1
import Switchboard
import SwitchboardTransports

extension HubAPI {
    /// Where publishes are posted (the Hummingbird route and the on-loop endpoint alike).
    static let broadcastPath = "/api/broadcast"
}

/// `POST /api/broadcast` answered on the connection's event loop, with the same checks and answers
/// as the API's Hummingbird route: handing it to a Hummingbird task and back costs two thread
/// wake-ups, which under fan-out load (every core busy) took milliseconds and showed in every
/// delivery's latency.
struct PublishEndpoint: InterceptedEndpoint {
    let api: HubAPI

    func matches(_ head: HTTPRequestHead, isFirstRequest: Bool) -> Bool {
        head.method == .POST && QueryString.split(uri: head.uri).path == HubAPI.broadcastPath
    }

    func maxBodySize(_ head: HTTPRequestHead) -> Int { api.maxBodySize }

    /// An oversized publish is read to its end and answered 413 `body_too_large`, as the route would.
    var drainsOversizedBody: Bool { true }

    func answer(_ head: HTTPRequestHead, body: ByteBuffer?, interceptor: HTTPInterceptor) {
        do {
            try HubAPI.checkKey(authorization: head.headers.first(name: "Authorization"), key: api.apiKey)
            let answer = api.publishAnswer(body: body ?? ByteBuffer(), idempotencyKey: head.headers.first(name: "Idempotency-Key"))
            interceptor.respond(
                status: HTTPResponseStatus(statusCode: answer.status),
                headers: [],
                body: answer.body,
                contentType: "application/json",
                close: false
            )
        } catch let error as APIError {
            Self.respond(error, interceptor: interceptor)
        } catch {
            Self.respond(APIError(.internalServerError, "internal_error", "\(error)"), interceptor: interceptor)
        }
    }

    func answerTooLarge(_ head: HTTPRequestHead, close: Bool, interceptor: HTTPInterceptor) {
        Self.respond(
            APIError(.contentTooLarge, "body_too_large", "request body over \(api.maxBodySize) bytes"),
            interceptor: interceptor,
            close: close
        )
    }

    static func respond(_ error: APIError, interceptor: HTTPInterceptor, close: Bool = false) {
        interceptor.respond(
            status: HTTPResponseStatus(statusCode: error.status.code),
            headers: [],
            body: JSONWriter.buffer(error.body),
            contentType: "application/json",
            close: close
        )
    }
}
