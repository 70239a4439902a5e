"""Ingest benchmark: messages/s accepted by mailintake vs a bare aiosmtpd sink, same run.

Not a test. Starts both servers as processes on loopback, sends the same bounded batch to
each over N concurrent connections, prints the figures and the ratio. Usage:

    .venv/bin/python bench/ingest.py [--messages 2000] [--connections 20] [--database-url URL] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailintake.storage.db import create_database_engine, session_factory, transaction, upgrade_database  # noqa: E402
from mailintake.storage.models import InboundMessage  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sample_mails(count: int) -> list[bytes]:
    mails = []
    for index in range(count):
        message = EmailMessage()
        message["From"] = "Researcher <researcher@example.org>"
        message["To"] = "security@example.com"
        message["Subject"] = f"Benchmark report {index}"
        message["Message-ID"] = f"<bench-{index}@example.org>"
        message.set_content(("Steps to reproduce: open https://app.example.com/x and submit the form.\n" * 25) + "Suggested severity: medium\n")
        mails.append(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
    return mails


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server did not listen on {port} within {timeout} s")


async def send_all(port: int, mails: list[bytes], connections: int) -> tuple[float, int]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for mail in mails:
        queue.put_nowait(mail)
    accepted = 0

    async def client() -> None:
        nonlocal accepted
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=60)
        await smtp.connect()
        while not queue.empty():
            mail = queue.get_nowait()
            await smtp.sendmail("researcher@example.org", ["security@example.com"], mail)
            accepted += 1
        await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return time.perf_counter() - started, accepted


def run_server(command: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)})
    wait_for_port(port, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(30)


def measure_sink(mails: list[bytes], connections: int, workdir: Path) -> float:
    port = free_port()
    sink = run_server([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l", f"127.0.0.1:{port}"], port, workdir / "sink.log")
    try:
        seconds, accepted = asyncio.run(send_all(port, mails, connections))
    finally:
        stop(sink)
    return accepted / seconds


def measure_mailintake(mails: list[bytes], connections: int, workdir: Path, database_url: str) -> tuple[float, float]:
    port = free_port()
    engine = create_database_engine(database_url)
    upgrade_database(engine)
    config = workdir / "config.toml"
    config.write_text(
        # The load comes from one address, like a front MTA's: the per-address cap must let it in.
        f'[intake]\naddresses = ["security@example.com"]\n\n[listener]\nhost = "127.0.0.1"\nport = {port}\nmax_connections_per_ip = {connections + 10}\n\n'
        f'[database]\nurl = "{database_url}"\n\n[logging]\nlevel = "WARNING"\n\n[secrets]\ndev_mode = true\n'
    )
    daemon = run_server([sys.executable, "-m", "mailintake", "--config", str(config), "serve"], port, workdir / "daemon.log")
    try:
        started = time.perf_counter()
        seconds, accepted = asyncio.run(send_all(port, mails, connections))
        processed_seconds = wait_until_processed(engine, accepted, started)
    finally:
        stop(daemon)
        engine.dispose()
    return accepted / seconds, accepted / processed_seconds


def wait_until_processed(engine, expected: int, started: float, timeout: float = 600.0) -> float:
    sessions = session_factory(engine)
    while time.perf_counter() - started < timeout:
        with transaction(sessions) as session:
            done = session.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.status == "processed"))
        if done >= expected:
            return time.perf_counter() - started
        time.sleep(0.2)
    raise SystemExit(f"processing did not finish within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object of the figures as the last line")
    arguments = parser.parse_args()
    mails = sample_mails(arguments.messages)
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        database_url = arguments.database_url or f"sqlite:///{workdir / 'bench.db'}"
        sink_rate = measure_sink(mails, arguments.connections, workdir)
        intake_rate, processed_rate = measure_mailintake(mails, arguments.connections, workdir, database_url)
    backend = database_url.split(":", 1)[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, database {backend}")
    print(f"messages: {arguments.messages} of {len(mails[0])} bytes over {arguments.connections} connections")
    print(f"bare aiosmtpd sink:           {sink_rate:8.1f} messages/s accepted")
    print(f"mailintake (commit before 250): {intake_rate:6.1f} messages/s accepted")
    print(f"mailintake parsed into reports: {processed_rate:6.1f} messages/s (from first send until all are reports)")
    print(f"ratio mailintake/sink (accepted): {intake_rate / sink_rate:.2f}")
    if arguments.json:
        figures = {
            "database": backend,
            "messages": arguments.messages,
            "bytes": len(mails[0]),
            "connections": arguments.connections,
            "sink_per_second": sink_rate,
            "accepted_per_second": intake_rate,
            "reports_per_second": processed_rate,
            "ratio": intake_rate / sink_rate,
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
