"""A server started without an API key generates one and logs it while it runs (issue 18, item 2).

stdout and stderr go to files here, as under systemd, Docker or `> log`: stdout is then
block-buffered, so a key written there showed only at exit. The key must be readable from the log
while the server runs, once, in both log formats, with a hint how to set a fixed key; and it must
be the key the server accepts.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from config_server import binary, clean_environment
from conftest import STARTUP_TIMEOUT_S, _accepts_connections, _die_with_parent, _free_port, _stop
from support import STEP_TIMEOUT_S

HINT = "set a fixed one with --api-key, SWITCHBOARD_API_KEY or api_key in the config file"


def status_with_key(port: int, key: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_generated_key_is_logged_while_the_server_runs(log_format: str) -> None:
    directory = Path(tempfile.mkdtemp(prefix="switchboard-key-"))
    stdout_path, stderr_path = directory / "stdout", directory / "stderr"
    port = _free_port()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            [binary(), "--host", "127.0.0.1", "--port", str(port), "--log-format", log_format],
            env=clean_environment(), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _accepts_connections(port):
            assert process.poll() is None, f"server exited: {stderr_path.read_text(errors='replace')}"
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        # The server is running (not exited): the key line must already be in its log.
        lines = [line for line in stderr_path.read_text().splitlines() if "generated one for this run" in line]
        assert len(lines) == 1, f"expected one key line on stderr, got {lines!r}; stdout: {stdout_path.read_text()!r}"
        if log_format == "json":
            entry = json.loads(lines[0])
            assert entry["level"] == "warning"
            assert HINT in entry["message"]
            key = entry["metadata"]["switchboard.api_key"]
        else:
            assert HINT in lines[0]
            match = re.search(r"switchboard\.api_key=(\S+)", lines[0])
            assert match, lines[0]
            key = match.group(1)
        assert len(key) >= 32
        assert status_with_key(port, key) == 200
        assert status_with_key(port, key + "x") == 401
        assert key not in stdout_path.read_text()
    finally:
        _stop(process)
