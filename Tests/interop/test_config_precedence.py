"""Standalone configuration of the real binary: `--help`, flags over SWITCHBOARD_* environment
variables over the config file (YAML or JSON) over the defaults, `--log-format json`, and
configuration errors (exit status 78 with the offending source named)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from config_server import run, server, write_config
from conftest import _free_port
from support import STEP_TIMEOUT_S

OPTIONS = ["--config", "--host", "--port", "--log-level", "--log-format", "--api-key", "--redis", "--allowed-origin",
           "--jwt-algorithm", "--jwt-secret", "--jwt-public-key-file", "--jwt-topics-claim", "--print-config"]
VARIABLES = ["SWITCHBOARD_CONFIG", "SWITCHBOARD_HOST", "SWITCHBOARD_PORT", "SWITCHBOARD_LOG_LEVEL", "SWITCHBOARD_LOG_FORMAT",
             "SWITCHBOARD_API_KEY", "SWITCHBOARD_REDIS_URL", "SWITCHBOARD_ALLOWED_ORIGINS", "SWITCHBOARD_JWT_ALGORITHM",
             "SWITCHBOARD_JWT_SECRET", "SWITCHBOARD_JWT_PUBLIC_KEY", "SWITCHBOARD_JWT_PUBLIC_KEY_FILE", "SWITCHBOARD_JWT_TOPICS_CLAIM"]


def api_status(port: int, path: str, key: str, body: dict | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="GET" if body is None else "POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_S) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_help_documents_every_option_and_variable():
    result = run(["--help"])
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # the help wraps lines
    for option in OPTIONS:
        assert option in text, option
    for variable in VARIABLES:
        assert variable in text, variable
    assert "flag wins over the environment, the environment over the file, the file over the defaults" in text


def test_print_config_defaults_are_the_demo():
    result = run(["--print-config"])
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert (config["host"], config["port"], config["log_level"], config["log_format"]) == ("127.0.0.1", 4000, "info", "text")
    assert config["namespaces"] == "built-in"
    assert config["jwt"]["secret"] is None and config["jwt"]["public_key"] is None
    assert config["allowed_origins"] == ["//localhost", "//127.0.0.1", "//[::1]"]
    assert config["api_key"] is None and config["config_file"] is None
    assert config["webhooks"] == [] and config["presence_lease_seconds"] == 30


def test_print_config_flag_over_environment_over_file(tmp_path: Path):
    file = write_config(tmp_path, """
host: 127.0.0.3
port: 5001
log_level: debug
log_format: json
api_key: from-file
jwt:
  secret: file-secret
  topics_claim: rooms
namespaces:
  "chat:":
    channel: chat
    publish: true
""", suffix=".yaml")
    env = {"SWITCHBOARD_CONFIG": str(file), "SWITCHBOARD_PORT": "5002", "SWITCHBOARD_LOG_LEVEL": "warning", "SWITCHBOARD_JWT_TOPICS_CLAIM": "topics"}
    config = json.loads(run(["--print-config", "--port", "5003"], env).stdout)
    assert config["config_file"] == str(file)
    assert config["port"] == 5003                     # flag over environment and file
    assert config["log_level"] == "warning"           # environment over file
    assert config["jwt"]["topics_claim"] == "topics"  # environment over file
    assert config["host"] == "127.0.0.3"              # file over default
    assert config["log_format"] == "json"
    assert config["api_key"] == "(set)" and config["jwt"]["secret"] == "(set)"
    assert config["namespaces"] == [{"pattern": "chat:*", "channel": "chat", "join": "anyone", "publish": True, "presence": False, "presence_grace": 0.0,
                                     "history": {"size": 0, "ttl": 0, "max_recover": 1000}, "slow_consumer": "disconnect"}]
    # --config beats $SWITCHBOARD_CONFIG.
    other = write_config(tmp_path, {"port": 6000})
    assert json.loads(run(["--print-config", "--config", str(other)], env).stdout)["port"] == 5002  # env still beats this file
    assert json.loads(run(["--print-config", "--config", str(other)]).stdout)["port"] == 6000


def test_running_server_uses_flag_port_environment_key_and_file_log_format(tmp_path: Path):
    file_port, flag_port = _free_port(), _free_port()
    file = write_config(tmp_path, {"host": "127.0.0.1", "port": file_port, "api_key": "file-key", "log_format": "json"})
    env = {"SWITCHBOARD_API_KEY": "env-key"}
    with server(["--config", str(file), "--port", str(flag_port)], env, port=flag_port, pass_port=False) as srv:
        assert api_status(flag_port, "/api/topics", "env-key") == 200
        assert api_status(flag_port, "/api/topics", "file-key") == 401
        lines = [line for line in srv.log_path.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]  # every line that looks like JSON must be JSON
    first = next((r for r in records if r.get("message") == "configuration"), None)
    assert first is not None, lines
    assert set(first) >= {"timestamp", "level", "label", "message", "metadata"}, first
    assert first["label"] == "switchboard" and first["level"] == "info" and first["message"] == "configuration"
    assert first["metadata"]["switchboard.config_file"] == str(file)


def test_server_listens_where_the_file_says_without_flags(tmp_path: Path):
    port = _free_port()
    file = write_config(tmp_path, "host: 127.0.0.1\nport: %d\napi_key: yaml-key\n" % port, suffix=".yml")
    with server([], {"SWITCHBOARD_CONFIG": str(file)}, port=port, pass_port=False):
        assert api_status(port, "/api/topics", "yaml-key") == 200


@pytest.mark.parametrize("args,env,needle", [
    (["--config", "/nonexistent/switchboard.yaml"], {}, "/nonexistent/switchboard.yaml"),
    ([], {"SWITCHBOARD_PORT": "eighty"}, "SWITCHBOARD_PORT"),
    (["--log-format", "xml"], {}, "--log-format"),
    ([], {"SWITCHBOARD_JWT_PUBLIC_KEY": "not a key"}, "jwt"),
])
def test_configuration_errors_exit_78_naming_the_source(args, env, needle):
    result = run([*args, "--port", "0"], env)
    assert result.returncode == 78, (result.returncode, result.stdout, result.stderr)
    assert "configuration error" in result.stderr and needle in result.stderr, result.stderr


def test_unknown_config_key_is_an_error(tmp_path: Path):
    file = write_config(tmp_path, {"prot": 4000})
    result = run(["--config", str(file), "--port", "0"])
    assert result.returncode == 78
    assert "prot: unknown key" in result.stderr, result.stderr
