"""Starts extra `switchboard` processes with their own flags, environment and config file, for the
configuration, namespace and JWT tests (the session's demo server from conftest.py runs with no
configuration). Every process is stopped when its `with` block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import DEFAULT_BIN, STARTUP_TIMEOUT_S, ServerProcess, _accepts_connections, _die_with_parent, _free_port, _stop


def binary() -> str:
    path = os.environ.get("SWITCHBOARD_BIN", DEFAULT_BIN)
    if not os.access(path, os.X_OK):
        pytest.fail(f"switchboard binary not found or not executable: {path} (set SWITCHBOARD_BIN)")
    return path


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any SWITCHBOARD_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(extra or {})
    return env


def write_config(directory: Path, config: dict | str, suffix: str = ".json") -> Path:
    """A config file: JSON for a dict, the text as it is otherwise (YAML)."""
    path = directory / f"switchboard-{os.getpid()}-{time.monotonic_ns()}{suffix}"
    path.write_text(json.dumps(config) if isinstance(config, dict) else config)
    return path


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Runs the binary to completion (e.g. --help, --print-config) and returns its result."""
    return subprocess.run([binary(), *args], env=clean_environment(env), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def server(args: list[str] | None = None, env: dict[str, str] | None = None, port: int | None = None, pass_port: bool = True) -> Iterator[ServerProcess]:
    """A running server on 127.0.0.1. `port` is where it is expected to listen; with `pass_port`
    it is given as --port (otherwise the test's config must make the server listen there)."""
    port = port or _free_port()
    log_path = Path(tempfile.mkdtemp(prefix="switchboard-config-")) / "server.log"
    command = [binary(), *(args or [])]
    if pass_port:
        command += ["--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, env=clean_environment(env), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent if os.name == "posix" else None)
    handle = ServerProcess(process, port, log_path)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _accepts_connections(port):
            if process.poll() is not None:
                raise AssertionError(f"switchboard exited with {process.returncode} before listening on {port}:\n{handle.log_tail()}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"switchboard did not listen on {port} within {STARTUP_TIMEOUT_S} s:\n{handle.log_tail()}")
            time.sleep(0.05)
        yield handle
        assert process.poll() is None, f"switchboard died during the test:\n{handle.log_tail()}"
    finally:
        _stop(process)
