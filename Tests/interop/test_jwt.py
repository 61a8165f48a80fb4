"""JWT connection auth against the real binary, tokens minted with PyJWT: HS256 (secret in a config
file), RS256 (public key file by flag) and ES256 (PEM in SWITCHBOARD_JWT_PUBLIC_KEY). The token
travels as the `token` param, phoenix.js's authToken subprotocol, or an SSE `Authorization:
Bearer`; a refused token is a 403 with the reason in the body, on every transport."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from config_server import server, write_config
from support import STEP_TIMEOUT_S, run_bounded

SECRET = "interop-jwt-secret-0123456789abcdef"
API_KEY = "jwt-key"


def now() -> int:
    return int(time.time())


def hs256(sub: str = "alice", secret: str = SECRET, **claims) -> str:
    return jwt.encode({"sub": sub, "exp": now() + 300, **claims}, secret, algorithm="HS256")


def public_pem(private_key) -> str:
    return private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def hs_server(tmp_path_factory) -> Iterator:
    config = {"api_key": API_KEY, "jwt": {"secret": SECRET},
              "namespaces": {"chat:*": {"publish": True}, "vip:*": {"join": "token"}, "me:*": {"join": "owner"}}}
    with server(["--config", str(write_config(tmp_path_factory.mktemp("jwt"), config))]) as srv:
        yield srv


async def refusal(url: str, **kwargs) -> tuple[int, dict]:
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        await websockets.connect(url, open_timeout=STEP_TIMEOUT_S, **kwargs)
    response = refused.value.response
    return response.status_code, json.loads(response.body)


async def join(ws, topic: str) -> dict:
    await ws.send(json.dumps(["1", "1", topic, "phx_join", {}]))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT_S))
        if frame[3] == "phx_reply" and frame[1] == "1":
            return frame[4]


def socket_url(port: int, token: str | None = None) -> str:
    return f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0" + (f"&token={token}" if token is not None else "")


def test_valid_token_param_identifies_the_user(hs_server):
    port = hs_server.port

    async def scenario():
        async with websockets.connect(socket_url(port, hs256("alice"))) as ws:
            assert await join(ws, "me:alice") == {"status": "ok", "response": {}}
            # The socket id is user_socket:<sub>: the API disconnects the user's connections.
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/disconnect", data=json.dumps({"user": "alice"}).encode(),
                                             method="POST", headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
            assert (await asyncio.to_thread(urllib.request.urlopen, request, timeout=STEP_TIMEOUT_S)).status == 202
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                for _ in range(10):
                    await asyncio.wait_for(ws.recv(), STEP_TIMEOUT_S)

    run_bounded(scenario())


def test_phoenix_js_auth_token_subprotocol(hs_server):
    token = hs256("bob")
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")

    async def scenario():
        async with websockets.connect(socket_url(hs_server.port), subprotocols=["phoenix", f"base64url.bearer.phx.{encoded}"]) as ws:
            assert await join(ws, "me:bob") == {"status": "ok", "response": {}}
        bad = base64.urlsafe_b64encode(hs256("bob", secret="wrong-0123456789abcdefghijklmnopqr").encode()).decode().rstrip("=")
        assert await refusal(socket_url(hs_server.port), subprotocols=["phoenix", f"base64url.bearer.phx.{bad}"]) == (
            403, {"error": "invalid token: signature does not verify"})

    run_bounded(scenario())


REFUSED = [
    ("expired", lambda: jwt.encode({"sub": "a", "exp": now() - 60}, SECRET, algorithm="HS256"), "invalid token: expired"),
    ("wrong key", lambda: hs256(secret="not-the-secret-0123456789abcdefgh"), "invalid token: signature does not verify"),
    ("wrong algorithm", lambda: jwt.encode({"sub": "a", "exp": now() + 60}, "k" * 64, algorithm="HS512"),
     "invalid token: algorithm HS512 is not accepted (expected HS256)"),
    ("alg none", lambda: jwt.encode({"sub": "a", "exp": now() + 60}, None, algorithm="none"),
     "invalid token: algorithm none is not accepted (expected HS256)"),
    ("malformed", lambda: "not-a-jwt", "invalid token: malformed (not three dot-separated parts)"),
    ("garbage header", lambda: "e30K!.e30.e30", "invalid token: malformed (the header is not base64url-encoded JSON)"),
    ("no exp", lambda: jwt.encode({"sub": "a"}, SECRET, algorithm="HS256"), "invalid token: no exp claim"),
    ("no sub", lambda: jwt.encode({"exp": now() + 60}, SECRET, algorithm="HS256"), "invalid token: no sub claim"),
]


@pytest.mark.parametrize("name,make,reason", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_tokens_are_403_with_reason_on_every_transport(hs_server, name, make, reason):
    token = make()
    port = hs_server.port

    async def scenario():
        assert await refusal(socket_url(port, token)) == (403, {"error": reason})
        assert await refusal(f"ws://127.0.0.1:{port}/ws/chat:1?token={token}") == (403, {"error": reason})
        async with httpx.AsyncClient(timeout=STEP_TIMEOUT_S) as http:
            response = await http.get(f"http://127.0.0.1:{port}/events", params={"topics": "chat:1"}, headers={"Authorization": f"Bearer {token}"})
            assert (response.status_code, response.json()) == (403, {"error": reason})

    run_bounded(scenario())


def test_topic_not_allowed_by_claim(hs_server):
    port = hs_server.port
    token = hs256("carol", channels=["vip:gold", "chat:*"])

    async def scenario():
        async with websockets.connect(socket_url(port, token)) as ws:
            assert await join(ws, "vip:gold") == {"status": "ok", "response": {}}
        async with websockets.connect(socket_url(port, token)) as ws:
            assert await join(ws, "vip:silver") == {"status": "error", "response": {"reason": "topic not allowed by token"}}
        assert await refusal(f"ws://127.0.0.1:{port}/ws/vip:silver?token={token}") == (403, {"error": "topic not allowed by token"})
        async with httpx.AsyncClient(timeout=STEP_TIMEOUT_S) as http:
            response = await http.get(f"http://127.0.0.1:{port}/events", params={"topics": "vip:silver"}, headers={"Authorization": f"Bearer {token}"})
            assert (response.status_code, response.json()) == (403, {"error": "topic not allowed by token", "topic": "vip:silver"})
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/vip:gold?token={token}"):
            pass

    run_bounded(scenario())


def test_sse_bearer_token_is_verified(hs_server):
    async def scenario():
        async with httpx.AsyncClient(timeout=STEP_TIMEOUT_S) as http:
            headers = {"Authorization": f"Bearer {hs256('dave')}", "Accept": "text/event-stream"}
            async with http.stream("GET", f"http://127.0.0.1:{hs_server.port}/events", params={"topics": "me:dave"}, headers=headers) as response:
                assert response.status_code == 200
            response = await http.get(f"http://127.0.0.1:{hs_server.port}/events", params={"topics": "me:dave"})
            assert (response.status_code, response.json()) == (403, {"error": "unauthorized", "topic": "me:dave"})

    run_bounded(scenario())


def test_rs256_public_key_file(tmp_path: Path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "rsa.pem"
    pem.write_text(public_pem(key))
    config = write_config(tmp_path, {"namespaces": {"me:": {"join": "owner"}}})

    async def scenario(port: int):
        good = jwt.encode({"sub": "rita", "exp": now() + 60}, key, algorithm="RS256")
        async with websockets.connect(socket_url(port, good)) as ws:
            assert await join(ws, "me:rita") == {"status": "ok", "response": {}}
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode({"sub": "rita", "exp": now() + 60}, other, algorithm="RS256")
        assert await refusal(socket_url(port, forged)) == (403, {"error": "invalid token: signature does not verify"})
        # Algorithm confusion: an HS256 token whose secret is the public key is refused for its algorithm.
        header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
        import hashlib, hmac
        payload = base64.urlsafe_b64encode(json.dumps({"sub": "rita", "exp": now() + 60}).encode()).rstrip(b"=").decode()
        signature = base64.urlsafe_b64encode(hmac.new(public_pem(key).encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
        assert await refusal(socket_url(port, f"{header}.{payload}.{signature}")) == (
            403, {"error": "invalid token: algorithm HS256 is not accepted (expected RS256)"})
        expired = jwt.encode({"sub": "rita", "exp": now() - 5}, key, algorithm="RS256")
        assert await refusal(socket_url(port, expired)) == (403, {"error": "invalid token: expired"})

    with server(["--config", str(config), "--jwt-public-key-file", str(pem)]) as srv:
        run_bounded(scenario(srv.port))


def test_es256_public_key_from_environment(tmp_path: Path):
    key = ec.generate_private_key(ec.SECP256R1())
    config = write_config(tmp_path, {"namespaces": {"me:": {"join": "owner"}}, "jwt": {"allow_anonymous": False}})

    async def scenario(port: int):
        good = jwt.encode({"sub": "eve", "exp": now() + 60}, key, algorithm="ES256")
        async with websockets.connect(socket_url(port, good)) as ws:
            assert await join(ws, "me:eve") == {"status": "ok", "response": {}}
        forged = jwt.encode({"sub": "eve", "exp": now() + 60}, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
        assert await refusal(socket_url(port, forged)) == (403, {"error": "invalid token: signature does not verify"})
        rs = jwt.encode({"sub": "eve", "exp": now() + 60}, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256")
        assert await refusal(socket_url(port, rs)) == (403, {"error": "invalid token: algorithm RS256 is not accepted (expected ES256)"})
        # allow_anonymous: false refuses connections without a token.
        assert await refusal(socket_url(port)) == (403, {"error": "a token is required"})

    with server(["--config", str(config)], {"SWITCHBOARD_JWT_PUBLIC_KEY": public_pem(key)}) as srv:
        run_bounded(scenario(srv.port))


def test_demo_server_without_jwt_keeps_user_id_param(base_url):
    """No key configured: tokens are not checked, the user_id param names the user (as before)."""

    async def scenario():
        async with websockets.connect(f"{base_url}/socket/websocket?vsn=2.0.0&user_id=zed&token=anything") as ws:
            assert await join(ws, "notifications:zed") == {"status": "ok", "response": {}}

    run_bounded(scenario())
