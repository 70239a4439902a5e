"""Start `python -m mailintake serve` as a real process on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADDRESSES = ("security@example.com", "psirt@example.com")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(path: Path, database_url: str, **overrides: object) -> Path:
    intake = {"addresses": list(ADDRESSES), "max_message_size": 200_000, "retry_interval": 1} | overrides.pop("intake", {})
    listener = {"host": "127.0.0.1", "port": free_port(), "protocol": "smtp"} | overrides.pop("listener", {})
    assert not overrides, f"unknown overrides {overrides}"
    lines = ["[intake]"] + [f"{key} = {json.dumps(value)}" for key, value in intake.items()]
    lines += ["", "[listener]"] + [f"{key} = {json.dumps(value)}" for key, value in listener.items()]
    lines += ["", "[database]", f"url = {json.dumps(database_url)}", "", "[logging]", 'level = "INFO"']
    path.write_text("\n".join(lines) + "\n")
    return path


def config_port(path: Path) -> int:
    import tomllib

    return tomllib.loads(path.read_text())["listener"]["port"]


class DaemonProcess:
    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.port = config_port(config_path)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        environment = os.environ | {"PYTHONPATH": str(REPO)}
        environment.pop("MAILINTAKE_DATABASE_URL", None)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailintake", "--config", str(self.config_path), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=REPO,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"daemon did not listen within {timeout} s:\n{self.log()}")

    def restart(self) -> None:
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
