import Hummingbird
import Switchboard

extension HubAPI {
    /// The OpenAPI 3.1 description of the HTTP API, served at `GET /api/openapi.json` (no key
    /// needed: it describes the API, it does not use it). Kept next to the routes it describes;
    /// the interop suite checks that every documented route answers as documented.
    public static let openAPIDocument: JSONValue = {
        let error: JSONValue = ["$ref": "#/components/schemas/Error"]
        func errorResponse(_ description: String) -> JSONValue {
            ["description": .string(description), "content": ["application/json": ["schema": error]]]
        }
        func jsonResponse(_ description: String, _ schema: JSONValue) -> JSONValue {
            ["description": .string(description), "content": ["application/json": ["schema": schema]]]
        }
        let unauthorized = errorResponse("Missing or wrong API key (`unauthorized`).")
        let message: JSONValue = [
            "type": "object",
            "required": ["topic", "event"],
            "properties": [
                "topic": ["type": "string", "minLength": 1, "examples": ["room:lobby"]],
                "event": [
                    "type": "string", "minLength": 1, "description": "Any name but `phx_*` and `disconnect` (reserved).", "examples": ["new_msg"],
                ],
                "payload": ["type": "object", "description": "A JSON object; `{}` when left out.", "examples": [["body": "hello"]]],
                "history": [
                    "type": "boolean", "default": true,
                    "description": "`false`: in a topic with history, delivered live only (not stored, no offset).",
                ],
            ],
        ]
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "Switchboard HTTP API",
                "version": "1.0.0",
                "description":
                    "Publish to topics, inspect them and disconnect users. Broadcasts reach every subscriber of the topic whatever its transport (Phoenix WebSocket, plain WebSocket, Server-Sent Events, long-poll), on every node when the Redis broker is on.",
            ],
            "security": [["apiKey": []]],
            "paths": [
                "/api/broadcast": [
                    "post": [
                        "summary": "Publish one message, or a batch (all-or-nothing, at most 1000).",
                        "operationId": "broadcast",
                        "parameters": [
                            [
                                "name": "Idempotency-Key", "in": "header", "required": false,
                                "description":
                                    "Retries with the same key within 5 minutes are delivered once and answered as the first time (this node; a key used with another body: 422 `idempotency_key_reused`).",
                                "schema": ["type": "string", "minLength": 1, "maxLength": 255],
                            ]
                        ],
                        "requestBody": [
                            "required": true,
                            "content": [
                                "application/json": [
                                    "schema": [
                                        "oneOf": [
                                            ["$ref": "#/components/schemas/Message"],
                                            [
                                                "type": "object", "required": ["messages"],
                                                "properties": [
                                                    "messages": [
                                                        "type": "array", "maxItems": 1000, "items": ["$ref": "#/components/schemas/Message"],
                                                    ]
                                                ],
                                            ],
                                        ]
                                    ]
                                ]
                            ],
                        ],
                        "responses": [
                            "202": jsonResponse(
                                "Handed over for delivery.",
                                ["type": "object", "required": ["published"], "properties": ["published": ["type": "integer"]]]
                            ),
                            "400": errorResponse("The body is not a JSON object (`invalid_json`), or a malformed `Idempotency-Key`."),
                            "401": unauthorized,
                            "413": errorResponse("Body or batch too large (`body_too_large`, `batch_too_large`)."),
                            "422": errorResponse(
                                "Invalid fields (`invalid_request`, `reserved_event`), a topic the server does not serve (`unknown_namespace`), or an `Idempotency-Key` reused with another body (`idempotency_key_reused`)."
                            ),
                        ],
                    ]
                ],
                "/api/topics": [
                    "get": [
                        "summary": "Topics with subscribers and their counts (cluster totals with the Redis broker, else this node).",
                        "operationId": "listTopics",
                        "responses": [
                            "200": jsonResponse(
                                "The topics.",
                                [
                                    "type": "object", "required": ["topics"],
                                    "properties": ["topics": ["type": "array", "items": ["$ref": "#/components/schemas/TopicCount"]]],
                                ]
                            ),
                            "401": unauthorized,
                        ],
                    ]
                ],
                "/api/topics/{topic}": [
                    "get": [
                        "summary": "One topic's subscriber count (0 when nobody listens).",
                        "operationId": "getTopic",
                        "parameters": [
                            [
                                "name": "topic", "in": "path", "required": true, "description": "The topic, percent-encoded (`room%3Alobby`) or not.",
                                "schema": ["type": "string"],
                            ]
                        ],
                        "responses": [
                            "200": jsonResponse("The count.", ["$ref": "#/components/schemas/TopicCount"]),
                            "401": unauthorized,
                        ],
                    ]
                ],
                "/api/topics/{topic}/presence": [
                    "get": [
                        "summary": "Who is present in a topic: users (keys), connections (metas) and each key's metas (with `phx_ref`).",
                        "operationId": "getPresence",
                        "parameters": [
                            [
                                "name": "topic", "in": "path", "required": true, "description": "The topic, percent-encoded (`room%3Alobby`) or not.",
                                "schema": ["type": "string"],
                            ],
                            [
                                "name": "count", "in": "query", "required": false, "description": "`1`: the counts only, without `presences`.",
                                "schema": ["type": "string", "enum": ["0", "1", "true", "false"]],
                            ],
                        ],
                        "responses": [
                            "200": jsonResponse("The presences.", ["$ref": "#/components/schemas/Presence"]),
                            "401": unauthorized,
                        ],
                    ]
                ],
                "/api/topics/{topic}/history": [
                    "get": [
                        "summary":
                            "The kept messages of a topic with history, with their offsets; `since` gives those after a position (as a broadcast's ref carries it).",
                        "operationId": "getHistory",
                        "parameters": [
                            [
                                "name": "topic", "in": "path", "required": true, "description": "The topic, percent-encoded (`feed%3Anews`) or not.",
                                "schema": ["type": "string"],
                            ],
                            [
                                "name": "since", "in": "query", "required": false,
                                "description": "`<epoch>:<offset>`: only the messages after it (409 when the epoch is not the topic's).",
                                "schema": ["type": "string"],
                            ],
                            [
                                "name": "limit", "in": "query", "required": false,
                                "description": "At most this many messages (the first, or with `reverse` the newest).",
                                "schema": ["type": "integer", "minimum": 0],
                            ],
                            [
                                "name": "reverse", "in": "query", "required": false, "description": "`true`: newest first.",
                                "schema": ["type": "string", "enum": ["0", "1", "true", "false"]],
                            ],
                        ],
                        "responses": [
                            "200": jsonResponse("The messages.", ["$ref": "#/components/schemas/History"]),
                            "400": jsonResponse("A malformed `since` or `limit`.", ["$ref": "#/components/schemas/Error"]),
                            "401": unauthorized,
                            "404": jsonResponse("The topic keeps no history (`no_history`).", ["$ref": "#/components/schemas/Error"]),
                            "409": jsonResponse(
                                "`since` is of another epoch (`epoch_mismatch`): recover from scratch.",
                                ["$ref": "#/components/schemas/Error"]
                            ),
                        ],
                    ]
                ],
                "/api/disconnect": [
                    "post": [
                        "summary":
                            "Close every connection of a user (socket id `user_socket:<user>`) or of a socket id, on every node; clients get close 1001 and reconnect.",
                        "operationId": "disconnect",
                        "requestBody": [
                            "required": true,
                            "content": [
                                "application/json": [
                                    "schema": [
                                        "type": "object", "properties": ["user": ["type": "string"], "socket_id": ["type": "string"]],
                                        "description": "Give `user` or `socket_id`.",
                                    ]
                                ]
                            ],
                        ],
                        "responses": [
                            "202": jsonResponse("Sent.", ["type": "object"]),
                            "400": errorResponse("The body is not a JSON object."),
                            "401": unauthorized,
                            "422": errorResponse("Neither `user` nor `socket_id` (`invalid_request`)."),
                        ],
                    ]
                ],
                "/api/openapi.json": [
                    "get": [
                        "summary": "This document.",
                        "operationId": "openAPI",
                        "security": [],
                        "responses": ["200": ["description": "OpenAPI 3.1 JSON.", "content": ["application/json": [:]]]],
                    ]
                ],
                "/metrics": [
                    "get": [
                        "summary":
                            "Prometheus text: connections by transport, joins, messages in, broadcasts, deliveries, slow-consumer disconnects, delivery latency histogram.",
                        "operationId": "metrics",
                        "responses": [
                            "200": ["description": "Prometheus exposition format 0.0.4.", "content": ["text/plain": [:]]], "401": unauthorized,
                        ],
                    ]
                ],
                "/health": [
                    "get": [
                        "summary": "200 while the server runs (for load balancers; no key needed).",
                        "operationId": "health",
                        "security": [],
                        "responses": ["200": ["description": "Up."]],
                    ]
                ],
            ],
            "components": [
                "securitySchemes": [
                    "apiKey": [
                        "type": "http", "scheme": "bearer",
                        "description": "The server's API key (`--api-key`, `SWITCHBOARD_API_KEY`, or the one logged at start).",
                    ]
                ],
                "schemas": [
                    "Message": message,
                    "TopicCount": [
                        "type": "object", "required": ["topic", "subscribers"],
                        "properties": [
                            "topic": ["type": "string"], "subscribers": ["type": "integer"],
                            "users": ["type": "integer", "description": "Present users (keys), for topics with presences."],
                            "connections": ["type": "integer", "description": "Present connections (metas), for topics with presences."],
                        ],
                    ],
                    "History": [
                        "type": "object", "required": ["topic", "epoch", "offset", "messages"],
                        "properties": [
                            "topic": ["type": "string"], "epoch": ["type": "string", "description": "The stream's lifetime."],
                            "offset": ["type": "integer", "description": "The newest message's offset (0: none yet)."],
                            "messages": [
                                "type": "array",
                                "items": [
                                    "type": "object", "required": ["offset", "event", "time"],
                                    "properties": [
                                        "offset": ["type": "integer"], "event": ["type": "string"], "payload": ["type": "object"],
                                        "payload_base64": ["type": "string", "description": "A binary payload, base64."],
                                        "time": ["type": "integer", "description": "When it was stored, Unix milliseconds."],
                                    ],
                                ],
                            ],
                        ],
                    ],
                    "Presence": [
                        "type": "object", "required": ["topic", "users", "connections"],
                        "properties": [
                            "topic": ["type": "string"], "users": ["type": "integer"], "connections": ["type": "integer"],
                            "presences": [
                                "type": "object", "description": "key → {\"metas\": [meta, …]}, as in `presence_state`.",
                                "additionalProperties": [
                                    "type": "object", "required": ["metas"],
                                    "properties": [
                                        "metas": [
                                            "type": "array",
                                            "items": ["type": "object", "required": ["phx_ref"], "properties": ["phx_ref": ["type": "string"]]],
                                        ]
                                    ],
                                ],
                            ],
                        ],
                    ],
                    "Error": [
                        "type": "object",
                        "required": ["error"],
                        "properties": [
                            "error": [
                                "type": "object", "required": ["code", "message"],
                                "properties": ["code": ["type": "string"], "message": ["type": "string"]],
                            ]
                        ],
                    ],
                ],
            ],
        ]
    }()

    /// Serves `openAPIDocument` at `GET /api/openapi.json`.
    func registerOpenAPI<Context: RequestContext>(on router: Router<Context>) {
        let body = JSONWriter.buffer(Self.openAPIDocument)
        router.get("api/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
        }
    }
}
