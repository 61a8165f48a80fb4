"""The README's smallest complete app (`switchboard-examples smallest`), with raw V2 frames."""
import asyncio
import json
import urllib.request

import websockets

from support import STEP_TIMEOUT_S, run_bounded


async def recv_frame(ws, what: str):
    return json.loads(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT_S))


def test_smallest_app_joins_echoes_and_broadcasts_from_a_route(smallest_app):
    port = smallest_app.port

    async def scenario():
        url = f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0"
        async with websockets.connect(url) as a, websockets.connect(url) as b:
            for ws in (a, b):
                await ws.send(json.dumps(["1", "1", "room:lobby", "phx_join", {}]))
                assert await recv_frame(ws, "join reply") == ["1", "1", "room:lobby", "phx_reply", {"status": "ok", "response": {}}]
            # What a member sends, everyone in the room receives (the sender too).
            await a.send(json.dumps(["1", "2", "room:lobby", "shout", {"body": "hi"}]))
            assert await recv_frame(a, "echo at a") == [None, None, "room:lobby", "shout", {"body": "hi"}]
            assert await recv_frame(b, "echo at b") == [None, None, "room:lobby", "shout", {"body": "hi"}]
            # The route broadcasts to the room.
            request = urllib.request.Request(f"http://127.0.0.1:{port}/rooms/lobby/announce", data=b"doors open", method="POST")
            status = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S).status)
            assert status == 202
            for ws in (a, b):
                assert await recv_frame(ws, "announce") == [None, None, "room:lobby", "announce", {"text": "doors open"}]

    run_bounded(scenario())
