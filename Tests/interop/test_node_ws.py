"""Plain WebSocket channels with Debian's node `ws` client (package node-ws)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_PATH = "/usr/share/nodejs"
SCRIPT = Path(__file__).parent / "node" / "plain_client.js"


def test_node_ws_greeting_chat_and_refusal(base_url, examples_url):
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None or not Path(NODE_PATH, "ws").exists():
        pytest.fail("node and Debian's node-ws are required (apt-get install nodejs node-ws)")
    env = dict(os.environ, NODE_PATH=NODE_PATH)
    done = subprocess.run([node, str(SCRIPT), base_url, examples_url], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["greeting"] == {"greeting": "Hello, Alice", "from": "nodeuser"}
    assert results["greetingError"]["error"]["code"] == "invalid_message"
    assert results["aJoined"] == {"type": "joined", "user": "a"}
    assert results["bJoinedAtB"] == {"type": "joined", "user": "b"}
    assert results["bJoinedAtA"] == {"type": "joined", "user": "b"}
    assert results["messageAtA"] == {"type": "message", "user": "b", "body": "hi from node"}
    assert results["messageAtB"] == {"type": "message", "user": "b", "body": "hi from node"}
    assert results["bLeftAtA"] == {"type": "left", "user": "b"}
    assert results["refused"] == 'HTTP 403 {"error":"unknown topic forbidden:topic"}'
