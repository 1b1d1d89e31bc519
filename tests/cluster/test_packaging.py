"""The packaging joins a cluster: the Docker image's command and the systemd template unit leave
every setting to their config file and the environment (nothing in argv but the config path),
so the environment can point the same image or unit at PostgreSQL and Redis, with passwords
from files. Docker itself cannot run on the test machine: the image's command and config are run
as they are, by the same ``chatd``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"


def check_config(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "chatd", "check-config", *argv],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def dockerfile_command() -> list[str]:
    """The image's CMD (exec form), its config path mapped to the repository's copy."""
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["chatd"\]$', text, re.M)
    cmd: list[str] = json.loads(re.findall(r"^CMD (\[.*\])$", text, re.M)[-1])
    assert "COPY config/docker.toml /etc/chatd/chatd.toml" in text
    return [str(CONFIG / "docker.toml") if a == "/etc/chatd/chatd.toml" else a for a in cmd]


def test_the_docker_image_defaults_are_overridden_by_the_environment(tmp_path: Path) -> None:
    cmd = dockerfile_command()
    assert cmd[0] == "serve"
    argv = cmd[1:]
    assert argv == ["--config", str(CONFIG / "docker.toml")]  # no setting in argv

    alone = check_config(argv, {})
    assert alone["server"]["host"] == "0.0.0.0"
    assert alone["store"]["db"] == "/data/chatd.db"
    assert alone["log"]["format"] == "json"

    (tmp_path / "pg").write_text("pg-pw\n")
    joined = check_config(
        argv,
        {
            "CHATD_STORE__DB": "postgresql://chatd@postgres:5432/chatd",
            "CHATD_STORE__PASSWORD_FILE": str(tmp_path / "pg"),
            "CHATD_BROKER__URL": "redis://redis:6379/0",
            "CHATD_SERVER__NODE_ID": "node-2",
        },
    )
    assert joined["store"]["db"] == "postgresql://chatd:***@postgres:5432/chatd"
    assert joined["broker"]["url"] == "redis://redis:6379/0"
    assert joined["server"]["node_id"] == "node-2"


def unit_lines(path: Path, instance: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (``%i`` expanded), by key."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value.replace("%i", instance))
    return out


def env_file(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )


def test_the_systemd_template_runs_one_node_per_instance_with_secrets_from_its_env_file() -> None:
    unit = unit_lines(CONFIG / "chatd@.service", "node-2")
    [exec_start] = unit["ExecStart"]
    binary, command, *argv = exec_start.split()
    assert binary.endswith("/chatd") and command == "serve"
    assert argv == ["--config", "/etc/chatd/node-2.toml"]  # no setting in argv
    assert unit["EnvironmentFile"] == ["/etc/chatd/chatd.env", "-/etc/chatd/node-2.env"]
    env = dict(v.split("=", 1) for v in unit["Environment"])
    env.update(env_file(CONFIG / "chatd.env.example"))  # what /etc/chatd/chatd.env starts from
    argv[-1] = str(CONFIG / "cluster" / "node-2.toml")  # what /etc/chatd/node-2.toml starts from
    effective = check_config(argv, env)
    assert effective["server"]["node_id"] == "node-2"
    assert effective["server"]["port"] == 8802
    assert effective["store"]["db"] == "postgresql://chatd:***@db.internal:5432/chatd"
    assert effective["broker"]["url"] == "redis://:***@redis.internal:6379/0"
    assert "change-me" not in json.dumps(effective)
    for name in ("chatd.service", "chatd@.service"):
        lines = unit_lines(CONFIG / name, "x")
        assert lines["KillSignal"] == ["SIGTERM"] and lines["Restart"] == ["on-failure"]
        assert not any("--db" in v or "--broker" in v for v in lines["ExecStart"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_analyze_accepts_both_units(tmp_path: Path) -> None:
    chatd = Path(sys.executable).parent / "chatd"
    for name, installed in (
        ("chatd.service", "chatd.service"),
        ("chatd@.service", "chatd@n1.service"),
    ):
        text = (CONFIG / name).read_text().replace("/opt/chatd/.venv/bin/chatd", str(chatd))
        (tmp_path / installed).write_text(text)
        out = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(tmp_path / installed)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
