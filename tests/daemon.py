"""Start `python -m mailintake serve` as a real process on a free loopback port."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADDRESSES = ("security@example.com", "psirt@example.com")
TEST_TOKEN_KEY = "test-only-reply-address-key-0123456789abcdef"


# Test daemons listen below Linux's ephemeral range (32768 and up), where client sockets and
# servers bound to port 0 take theirs, each test process in a block of its own: a port the
# kernel handed out and took back could otherwise go to two test processes at once, and one
# test would talk to the other's daemon.
# MAILINTAKE_TEST_FIRST_PORT moves the blocks, for two suites run at once on one machine.
FIRST_PORT = int(os.environ.get("MAILINTAKE_TEST_FIRST_PORT", "20000"))
PORTS_PER_PROCESS = 2000
PROCESS_BLOCKS = 6
_port_turns = itertools.count()


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    block = FIRST_PORT + (int(worker or 0) % PROCESS_BLOCKS) * PORTS_PER_PROCESS
    for _ in range(PORTS_PER_PROCESS):
        port = block + next(_port_turns) % PORTS_PER_PROCESS
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {block}..{block + PORTS_PER_PROCESS - 1}")


WORKER_PROCESSES = {"workers": {"processes": 1}}


def write_config(path: Path, database_url: str, **overrides: object) -> Path:
    """A config for a test daemon; each keyword is a section whose keys override the defaults
    here, and `extra` is TOML appended as it is (e.g. an SLA preset)."""
    extra = str(overrides.pop("extra", ""))
    sections = {
        "intake": {"addresses": list(ADDRESSES), "max_message_size": 200_000, "retry_interval": 1},
        "listener": {"host": "127.0.0.1", "port": free_port(), "protocol": "smtp", "shutdown_grace": 10},
        "relay": {"host": "127.0.0.1", "port": free_port(), "timeout": 5},
        "outbox": {"retry_interval": 1},
        "scheduler": {"sla_interval": 1, "outbox_interval": 1, "digest_time": ""},
        # Processing inside the test daemon's own process: a worker process costs every start
        # another interpreter. The tests of worker processes, durability and crashes ask for
        # them (WORKER_PROCESSES).
        "workers": {"processes": 0},
        "secrets": {"token_key": TEST_TOKEN_KEY},
    }
    for name, values in overrides.items():
        sections[name] = sections.get(name, {}) | dict(values)  # type: ignore[arg-type]
    lines = []
    for name, values in sections.items():
        lines += [f"[{name}]"] + [f"{key} = {json.dumps(value)}" for key, value in values.items()] + [""]
    lines += ["[database]", f"url = {json.dumps(database_url)}", "", "[logging]", 'level = "INFO"', "", extra]
    path.write_text("\n".join(lines) + "\n")
    return path


def config_port(path: Path, section: str = "listener") -> int:
    return tomllib.loads(path.read_text())[section]["port"]


class DaemonProcess:
    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.port = config_port(config_path)
        self.relay_port = config_port(config_path, "relay")
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
        # A daemon that never listened would otherwise outlive the test (and the run).
        self.kill()
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

    def worker_pids(self) -> list[int]:
        """The worker processes `serve` started (its children that run `mailintake work`)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children if b"work" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
