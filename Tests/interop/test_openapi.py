"""`GET /api/openapi.json`: the HTTP API described as OpenAPI 3.1, checked against the real server.

The document must be valid JSON with the OpenAPI 3.1 shape, and it must tell the truth: every
operation it lists answers with one of the statuses it documents (a valid request with the key
gets the documented success status; the routes that need the key answer 401 without it).
"""
import json
import urllib.error
import urllib.request

from conftest import API_KEY
from support import STEP_TIMEOUT_S


def call(http_url: str, method: str, path: str, body: dict | None = None, key: str | None = API_KEY) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{http_url}{path}", data=data, headers=headers, method=method.upper())
    try:
        with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_openapi_document_is_served_without_a_key_and_matches_the_routes(http_url: str) -> None:
    status, raw = call(http_url, "GET", "/api/openapi.json", key=None)
    assert status == 200
    doc = json.loads(raw)
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["apiKey"]["description"],
    }
    paths = doc["paths"]
    assert set(paths) == {
        "/api/broadcast", "/api/topics", "/api/topics/{topic}", "/api/topics/{topic}/presence", "/api/topics/{topic}/history", "/api/disconnect", "/api/openapi.json", "/metrics", "/health",
    }

    # Every $ref points at a schema that exists.
    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.split("/")[-1] in doc["components"]["schemas"], ref

    # A valid request for each operation, with the key: answered with a documented success status.
    valid = {
        ("/api/broadcast", "post"): ("/api/broadcast", {"topic": "public:openapi", "event": "e", "payload": {}}),
        ("/api/topics", "get"): ("/api/topics", None),
        ("/api/topics/{topic}", "get"): ("/api/topics/public%3Aopenapi", None),
        ("/api/topics/{topic}/presence", "get"): ("/api/topics/online/presence", None),
        ("/api/topics/{topic}/history", "get"): ("/api/topics/feed%3Aopenapi/history", None),
        ("/api/disconnect", "post"): ("/api/disconnect", {"user": "nobody-openapi"}),
        ("/api/openapi.json", "get"): ("/api/openapi.json", None),
        ("/metrics", "get"): ("/metrics", None),
        ("/health", "get"): ("/health", None),
    }
    for path, operations in paths.items():
        for method, operation in operations.items():
            url, body = valid[(path, method)]
            status, _ = call(http_url, method, url, body)
            documented = {int(code) for code in operation["responses"]}
            successes = {code for code in documented if code < 300}
            assert status in successes, f"{method.upper()} {path}: {status}, documented {sorted(documented)}"
            needs_key = operation.get("security", doc["security"]) != []
            status, raw_error = call(http_url, method, url, body, key=None)
            if needs_key:
                assert status == 401 and 401 in documented, f"{method.upper()} {path} without a key: {status}"
                assert json.loads(raw_error)["error"]["code"] == "unauthorized"
            else:
                assert status in successes, f"{method.upper()} {path} needs no key, got {status}"

    # A documented error: bad fields → 422 with the error shape.
    status, raw = call(http_url, "POST", "/api/broadcast", {"topic": "", "event": "e"})
    assert status == 422 and 422 in {int(c) for c in paths["/api/broadcast"]["post"]["responses"]}
    assert set(json.loads(raw)["error"]) == {"code", "message"}
