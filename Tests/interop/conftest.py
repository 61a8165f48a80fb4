"""Starts the real `switchboard` demo server for the interop suite.

The binary comes from $SWITCHBOARD_BIN (default /work/main/.build/debug/switchboard). It is
started once per test session on a free 127.0.0.1 port, and always killed at the end. The README's
library examples run from `switchboard-examples` beside it ($SWITCHBOARD_EXAMPLES_BIN overrides).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from browser import Browser, find_chromium

DEFAULT_BIN = "/work/main/.build/debug/switchboard"
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    log_path: Path

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError as exc:
            return f"(no server log: {exc})"


API_KEY = "interop-key"


def _free_port() -> int:
    # Bind to port 0, read the port the kernel picked, release it for the server.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """Linux: the server gets SIGKILL if pytest itself dies without running fixture teardown."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def _start(binary: str, log_dir: Path, attempt: int, arguments: list[str] | None = None) -> ServerProcess:
    port = _free_port()
    log_path = log_dir / f"{Path(binary).name}-{port}-{attempt}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 -- closed below; the child keeps its own fd
    argv = [binary, *(arguments or []), "--port", str(port)]
    if arguments is None:
        argv += ["--host", "127.0.0.1", "--api-key", API_KEY]
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )
    finally:
        log_file.close()
    server = ServerProcess(process, port, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"switchboard exited with status {process.returncode} before accepting "
                    f"connections on port {port}:\n{server.log_tail()}"
                )
            if _accepts_connections(port):
                return server
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"switchboard did not accept connections on port {port} within "
                    f"{STARTUP_TIMEOUT_S} s:\n{server.log_tail()}"
                )
            time.sleep(0.05)
    except BaseException:
        _stop(process)
        raise


def _serve(binary: str, arguments: list[str] | None = None) -> Iterator[ServerProcess]:
    if not os.access(binary, os.X_OK):
        pytest.fail(f"binary not found or not executable: {binary} (set SWITCHBOARD_BIN / SWITCHBOARD_EXAMPLES_BIN)")
    log_dir = Path(tempfile.mkdtemp(prefix="switchboard-interop-"))
    server = None
    # The free port may be taken between releasing it and the server binding it; retry then.
    for attempt in range(3):
        try:
            server = _start(binary, log_dir, attempt, arguments)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    assert server is not None
    try:
        yield server
    finally:
        crashed = server.process.poll() is not None
        _stop(server.process)
        if crashed:
            pytest.fail(
                f"{Path(binary).name} exited during the test session (status {server.process.returncode}):\n"
                f"{server.log_tail()}"
            )


@pytest.fixture(scope="session")
def switchboard_server() -> Iterator[ServerProcess]:
    yield from _serve(os.environ.get("SWITCHBOARD_BIN", DEFAULT_BIN))


def _examples_binary() -> str:
    default = str(Path(os.environ.get("SWITCHBOARD_BIN", DEFAULT_BIN)).with_name("switchboard-examples"))
    return os.environ.get("SWITCHBOARD_EXAMPLES_BIN", default)


@pytest.fixture(scope="session")
def examples_server() -> Iterator[ServerProcess]:
    """`switchboard-examples`: the README's greeting (`/greet/{user}`) and to-do feed (`/todos`)."""
    yield from _serve(_examples_binary(), [])


@pytest.fixture(scope="session")
def examples_url(examples_server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{examples_server.port}"


@pytest.fixture(scope="session")
def examples_http_url(examples_server: ServerProcess) -> str:
    return f"http://127.0.0.1:{examples_server.port}"


@pytest.fixture(scope="module")
def smallest_app() -> Iterator[ServerProcess]:
    """`switchboard-examples smallest`: the README's smallest complete app, alone."""
    yield from _serve(_examples_binary(), ["smallest"])


@pytest.fixture(scope="session")
def base_url(switchboard_server: ServerProcess) -> str:
    """The server's base URL, e.g. ws://127.0.0.1:PORT."""
    return f"ws://127.0.0.1:{switchboard_server.port}"


@pytest.fixture(scope="session")
def socket_url(base_url: str) -> str:
    """The Phoenix WebSocket endpoint (what phoenix.js builds from `/socket`)."""
    return f"{base_url}/socket/websocket"


@pytest.fixture(autouse=True)
def server_still_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test during which the server process died (only for tests that use it)."""
    yield
    if "switchboard_server" in request.fixturenames:
        server: ServerProcess = request.getfixturevalue("switchboard_server")
        if server.process.poll() is not None:
            pytest.fail(f"switchboard died during this test (status {server.process.returncode}):\n{server.log_tail()}")


@pytest.fixture(scope="session")
def http_url(switchboard_server: ServerProcess) -> str:
    """The server's HTTP base URL, e.g. http://127.0.0.1:PORT."""
    return f"http://127.0.0.1:{switchboard_server.port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium (Debian package) for the tests of one module; closed after them."""
    binary = find_chromium()
    if binary is None:
        pytest.fail("chromium is required (apt-get install chromium)")
    b = Browser(binary)
    try:
        yield b
    finally:
        b.close()
