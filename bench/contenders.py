"""The servers `bench/run.py` starts on loopback: Postfix's smtp-sink, a bare aiosmtpd sink,
the relay sink mailintake sends to, and mailintake itself (`serve` with a config made from
config.example.toml), plus the databases behind it (a temp SQLite file, or a fresh schema
of a PostgreSQL database). Every server is a child process, stopped by its own id."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailintake.storage.db import create_database_engine, upgrade_database  # noqa: E402
from mailintake.storage.models import InboundMessage, OutboxMessage, Report  # noqa: E402

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
# Terminal states of a delivery (documented in storage/inbound_queue.py); a failed one is
# retried later but has had its turn.
DONE_STATUSES = ("processed", "duplicate", "failed")
RECIPIENT = "security@example.com"
SENDER = "researcher@example.org"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_tail(log: Path) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])[-400:] if log.exists() else ""


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, process.args[-3:]))} exited with {process.returncode} before listening: {log_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    stop(process)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


def launched(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)})


def started(command: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    process = launched(command, log)
    wait_for_port(port, process, log)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, SIGKILL after STOP_TIMEOUT; then any of its children (serve's workers and
    parsers) still running, each by its id and only while it is still that program."""
    if process.poll() is not None:
        return
    children = {pid: command_line(pid) for pid in descendant_pids(process.pid)}
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pid, command in children.items():
        if command and command_line(pid) == command:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@contextmanager
def running(command: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = started(command, port, log)
    try:
        yield process
    finally:
        stop(process)


def smtp_sink_path() -> str | None:
    return shutil.which("smtp-sink") or next((path for path in ("/usr/sbin/smtp-sink",) if Path(path).exists()), None)


def smtp_sink_command(path: str, port: int) -> list[str]:
    # smtp-sink must drop privileges when started as root; -u is refused otherwise.
    drop = ["-u", "nobody"] if os.geteuid() == 0 else []
    return [path, *drop, "-m", "256", f"127.0.0.1:{port}", "256"]


def aiosmtpd_sink_command(port: int) -> list[str]:
    return [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l", f"127.0.0.1:{port}"]


@dataclass(frozen=True)
class RelayRecord:
    arrived: float
    message_id: str
    in_reply_to: str
    to: tuple[str, ...]


class RelaySink:
    """The relay sink's log, read back: what mailintake sent, when it arrived."""

    def __init__(self, log: Path, port: int) -> None:
        self.log = log
        self.port = port

    def records(self) -> list[RelayRecord]:
        if not self.log.exists():
            return []
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [relay_record(json.loads(line)) for line in lines if line.endswith("}")]

    def double_sends(self) -> int:
        ids = [record.message_id for record in self.records()]
        return len(ids) - len(set(ids))


def relay_record(fields: dict[str, object]) -> RelayRecord:
    return RelayRecord(float(fields["t"]), str(fields["Message-ID"]), str(fields["In-Reply-To"]), tuple(fields["to"]))  # type: ignore[arg-type]


@contextmanager
def relay_sink(workdir: Path, name: str) -> Iterator[RelaySink]:
    port = free_port()
    log = workdir / f"{name}.jsonl"
    command = [sys.executable, str(REPO / "bench" / "relay_sink.py"), "--port", str(port), "--log", str(log)]
    with running(command, port, workdir / f"{name}.log"):
        yield RelaySink(log, port)


def config_with(example: str, overrides: dict[tuple[str, str], str]) -> str:
    """The example config with the given `[section] key` values replaced in place (TOML
    literals); a key the example does not set is an error, so the copy stays the example."""
    section = ""
    done: set[tuple[str, str]] = set()
    lines = []
    for line in example.splitlines():
        header = re.match(r"^\[([\w.]+)\]\s*$", line)
        if header:
            section = header.group(1)
        assignment = re.match(r"^(\w+)\s*=", line)
        if assignment and (section, assignment.group(1)) in overrides:
            key = (section, assignment.group(1))
            line = f"{key[1]} = {overrides[key]}"
            done.add(key)
        lines.append(line)
    missing = set(overrides) - done
    if missing:
        raise ValueError(f"config.example.toml does not set {sorted(missing)}")
    return "\n".join(lines) + "\n"


def toml_string(value: str) -> str:
    return json.dumps(value)


def mailintake_config(workdir: Path, name: str, port: int, database_url: str, relay_port: int, max_message_size: str = "25MB") -> Path:
    overrides = {
        ("listener", "port"): str(port),
        ("database", "url"): toml_string(database_url),
        ("relay", "host"): toml_string("127.0.0.1"),
        ("relay", "port"): str(relay_port),
        ("intake", "max_message_size"): toml_string(max_message_size),
        # Every report is acknowledged, as from many reporters; the benchmark's mail all
        # comes from one address, which the example's 5 per hour would silence.
        ("outbox", "auto_replies_per_hour"): "10000",
    }
    path = workdir / f"{name}.toml"
    path.write_text(config_with((REPO / "config.example.toml").read_text(encoding="utf-8"), overrides), encoding="utf-8")
    return path


def serve_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "mailintake", "--config", str(config), "serve"]


@contextmanager
def sqlite_database(workdir: Path, name: str) -> Iterator[str]:
    url = f"sqlite:///{workdir / (name + '.db')}"
    prepared(url)
    yield url


def postgresql_unreachable(base_url: str) -> str | None:
    """None if the server answers, else one line saying why not."""
    try:
        engine = create_engine(base_url, connect_args={"connect_timeout": 5})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any failure means: skip, with its class name
        return f"PostgreSQL at {make_url(base_url).render_as_string(hide_password=True)} unreachable ({type(error).__name__})"
    return None


def postgresql_version(base_url: str) -> str:
    engine = create_engine(base_url)
    with engine.connect() as connection:
        version = str(connection.scalar(text("SHOW server_version")))
    engine.dispose()
    return version


@contextmanager
def postgresql_schema(base_url: str) -> Iterator[str]:
    """A URL whose search path is a fresh schema of its own, dropped afterwards: the
    benchmark never touches tables other users of the database have."""
    schema = f"bench_{uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        prepared(url)
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def prepared(url: str) -> None:
    engine = create_database_engine(url)
    upgrade_database(engine)
    engine.dispose()


def polling_engine(url: str) -> Engine:
    """An engine for reading progress only: a plain one, so on SQLite its reads take no
    write lock (mailintake's own engine begins every transaction IMMEDIATE)."""
    return create_engine(url)


@dataclass(frozen=True)
class Counts:
    inbound: int
    done: int
    reports: int
    outbox_pending: int


def counts(engine: Engine) -> Counts:
    with engine.connect() as connection:
        inbound = connection.scalar(select(func.count()).select_from(InboundMessage)) or 0
        done = connection.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.status.in_(DONE_STATUSES))) or 0
        reports = connection.scalar(select(func.count()).select_from(Report)) or 0
        pending = connection.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")) or 0
    return Counts(inbound, done, reports, pending)


def wait_until(engine: Engine, ready: str, timeout: float, poll: float = 0.2) -> tuple[Counts, bool]:
    """Polls until every stored delivery is done (`ready="processed"`) or, besides, the
    outbox has nothing pending (`ready="drained"`); (last counts, whether it got there)."""
    deadline = time.monotonic() + timeout
    while True:
        now = counts(engine)
        finished = now.done >= now.inbound and (ready == "processed" or now.outbox_pending == 0)
        if finished or time.monotonic() >= deadline:
            return now, finished
        time.sleep(poll)


def peak_rss_kib(pid: int) -> int:
    """VmHWM of a live process: its peak resident set so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def children_peak_rss_kib(pid: int) -> dict[int, int]:
    """VmHWM of each live descendant; one that ended meanwhile is left out."""
    peaks = {}
    for child in descendant_pids(pid):
        try:
            peaks[child] = peak_rss_kib(child)
        except OSError:
            continue
    return peaks


def descendant_pids(pid: int) -> list[int]:
    children: list[int] = []
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(value) for value in child.read_text().split()]
        except OSError:
            continue
    return children + [grandchild for child in children for grandchild in descendant_pids(child)]
