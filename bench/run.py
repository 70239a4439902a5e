"""`make bench`: every benchmark in one run, one table, ratios from the same run. Not a test.

Starts each contender itself on 127.0.0.1 free ports: Postfix's smtp-sink (when
installed), a bare aiosmtpd sink, and mailintake `serve` (the example config, policy A)
on SQLite and on PostgreSQL, its relay a sink that records what arrives. Sends with
Postfix's smtp-source when installed, one message per connection, else with an asyncio
client; then runs the periodic-work scripts beside this one (`--json`). Every load has a
fixed count; `--quick` makes them small.

    .venv/bin/python bench/run.py [--quick] [--database-url URL] [--skip-postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clients import ClientRun, asyncio_run, large_mail, mails, percentile, smtp_source_path, smtp_source_seconds
from contenders import (
    REPO,
    SENDER,
    RelaySink,
    aiosmtpd_sink_command,
    children_peak_rss_kib,
    counts,
    free_port,
    launched,
    mailintake_config,
    peak_rss_kib,
    polling_engine,
    postgresql_schema,
    postgresql_unreachable,
    postgresql_version,
    relay_sink,
    running,
    serve_command,
    smtp_sink_command,
    smtp_sink_path,
    sqlite_database,
    stop,
    wait_for_port,
    wait_until,
)

from mailintake.intake.store import Delivery, store_deliveries
from mailintake.storage.db import create_database_engine, session_factory

DEFAULT_POSTGRESQL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SMTP_SINK = "smtp-sink"
AIOSMTPD_SINK = "aiosmtpd sink"
SQLITE = "mailintake SQLite"
POSTGRESQL = "mailintake PostgreSQL"
COLUMNS = (SMTP_SINK, AIOSMTPD_SINK, SQLITE, POSTGRESQL)
SMALL = 6_000
LARGE = 1_000_000
SESSIONS = (1, 8)
SIZES = (SMALL, LARGE)
SCRIPT_TIMEOUT = 900.0
WARM_UP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Amounts:
    """How much each load sends: the only knobs, fixed per mode."""

    sink_messages: dict[int, int]
    intake_messages: dict[int, int]
    timing_messages: dict[int, int]
    ack_messages: int
    open_reports: int
    recompute_reports: int
    deadline_samples: int
    backlog: int
    large_message: int
    processing_timeout: float


FULL = Amounts(
    sink_messages={SMALL: 2000, LARGE: 100},
    intake_messages={SMALL: 300, LARGE: 24},
    timing_messages={SMALL: 60, LARGE: 8},
    ack_messages=150,
    open_reports=100_000,
    recompute_reports=10_000,
    deadline_samples=200_000,
    backlog=600,
    large_message=25_000_000,
    processing_timeout=300.0,
)
QUICK = Amounts(
    sink_messages={SMALL: 300, LARGE: 20},
    intake_messages={SMALL: 60, LARGE: 6},
    timing_messages={SMALL: 20, LARGE: 4},
    ack_messages=30,
    open_reports=5_000,
    recompute_reports=1_000,
    deadline_samples=20_000,
    backlog=100,
    large_message=5_000_000,
    processing_timeout=120.0,
)


@dataclass
class Table:
    """Rows of (measure, cell per column, target), in the order they were measured."""

    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    accepted: dict[tuple[str, int, int], float] = field(default_factory=dict)

    def put(self, measure: str, column: str, value: str, target: str = "") -> None:
        self.rows.setdefault(measure, {})[column] = value
        if target:
            self.targets[measure] = target

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", file=sys.stderr, flush=True)


def progress(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def attempt(table: Table, label: str, work: Callable[[], None]) -> None:
    """Runs one measurement; a failure becomes a note and '—' cells, not the end of the run."""
    try:
        work()
    except Exception as error:  # noqa: BLE001 - every failure is reported and the run goes on
        table.note(f"{label}: {type(error).__name__}: {' '.join(str(error).split())[:300]}")


def size_label(size: int) -> str:
    return f"{size / 1_000_000:g} MB" if size >= 1_000_000 else f"{size / 1000:g} KB"


def sessions_label(sessions: int) -> str:
    return f"{sessions} session{'s' if sessions > 1 else ''}"


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def ratio(value: float) -> str:
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def millis(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def p50_p99(values: list[float]) -> str:
    return f"{millis(percentile(values, 0.5))} / {millis(percentile(values, 0.99))} ms" if values else "—"


def accepted_row(sessions: int, size: int) -> str:
    return f"accepted/s, {sessions_label(sessions)}, {size_label(size)}"


def ratio_row(sessions: int, size: int) -> str:
    return f"  × aiosmtpd sink / × smtp-sink, {sessions_label(sessions)}, {size_label(size)}"


def reports_row(sessions: int, size: int) -> str:
    return f"reports/s, {sessions_label(sessions)}, {size_label(size)}"


def transaction_row(sessions: int, size: int) -> str:
    return f"SMTP transaction p50 / p99, {sessions_label(sessions)}, {size_label(size)}"


# --- the SMTP matrix ----------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    smtp_source: str | None

    def name(self) -> str:
        return "smtp-source" if self.smtp_source else "asyncio client (aiosmtplib)"


def accepted_rate(client: Client, port: int, sessions: int, size: int, count: int, tag: str) -> tuple[float, ClientRun | None]:
    """(messages/s the client saw accepted, the asyncio run when it was the client)."""
    if client.smtp_source:
        return count / smtp_source_seconds(client.smtp_source, port, sessions, count, size), None
    run = asyncio_run(port, sessions, mails(tag, count, size))
    if run.refused:
        raise RuntimeError(f"{run.refused} of {count} messages refused")
    return run.accepted / run.seconds, run


def timing_run(client: Client, port: int, sessions: int, size: int, count: int, tag: str, run: ClientRun | None) -> ClientRun:
    """The asyncio client's transaction times: from the throughput run when it was the
    client, else from a short run of its own right after smtp-source's."""
    return run if run is not None else asyncio_run(port, sessions, mails(tag, count, size))


def measure_sink(table: Table, column: str, command_for: Callable[[int], list[str]], client: Client, amounts: Amounts, workdir: Path) -> None:
    port = free_port()
    with running(command_for(port), port, workdir / f"{column.replace(' ', '-')}.log"):
        for size in SIZES:
            for sessions in SESSIONS:
                progress(f"{column}: {sessions_label(sessions)}, {size_label(size)}")
                tag = f"sink-{sessions}-{size}-{time.monotonic_ns()}"

                def work(sessions: int = sessions, size: int = size, tag: str = tag) -> None:
                    per_second, run = accepted_rate(client, port, sessions, size, amounts.sink_messages[size], tag)
                    table.accepted[(column, sessions, size)] = per_second
                    table.put(accepted_row(sessions, size), column, rate(per_second))
                    timing = timing_run(client, port, sessions, size, amounts.timing_messages[size], tag + "-t", run)
                    table.put(transaction_row(sessions, size), column, p50_p99(timing.transaction_seconds))

                attempt(table, f"{column}, {sessions_label(sessions)}, {size_label(size)}", work)


@contextmanager
def mailintake_running(workdir: Path, name: str, database_url: str, relay: RelaySink, max_message_size: str = "25MB") -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """serve with the example config, warmed up: one mail sent through it, processed and
    its acknowledgement and notification delivered, before anything is measured."""
    port = free_port()
    config = mailintake_config(workdir, name, port, database_url, relay.port, max_message_size)
    with running(serve_command(config), port, workdir / f"{name}.log") as process:
        warm_up = asyncio_run(port, 1, mails(f"warm-up-{time.monotonic_ns()}", 1, SMALL))
        engine = polling_engine(database_url)
        _, finished = wait_until(engine, "drained", WARM_UP_TIMEOUT)
        engine.dispose()
        if warm_up.accepted != 1 or not finished:
            raise RuntimeError(f"serve did not take and process one warm-up mail within {WARM_UP_TIMEOUT:.0f} s")
        yield port, process


def measure_mailintake_row(table: Table, column: str, client: Client, port: int, url: str, sessions: int, size: int, amounts: Amounts) -> None:
    engine = polling_engine(url)
    tag = f"{column.split()[-1].lower()}-{sessions}-{size}-{time.monotonic_ns()}"
    before = counts(engine)
    began = time.monotonic()
    per_second, run = accepted_rate(client, port, sessions, size, amounts.intake_messages[size], tag)
    table.accepted[(column, sessions, size)] = per_second
    table.put(accepted_row(sessions, size), column, rate(per_second))
    timing = timing_run(client, port, sessions, size, amounts.timing_messages[size], tag + "-t", run)
    table.put(transaction_row(sessions, size), column, p50_p99(timing.transaction_seconds))
    after, finished = wait_until(engine, "processed", amounts.processing_timeout)
    elapsed = time.monotonic() - began
    made = after.reports - before.reports
    table.put(reports_row(sessions, size), column, rate(made / elapsed) if finished else f"> {amounts.processing_timeout:.0f} s ({after.done - before.done} of {after.inbound - before.inbound} done)", "≥ 150" if size == SMALL else "")
    sent = amounts.intake_messages[size] + (amounts.timing_messages[size] if run is None else 0)
    if not after.inbound - before.inbound == made == sent:
        table.note(f"{column}, {sessions_label(sessions)}, {size_label(size)}: {sent} sent, {after.inbound - before.inbound} stored, {made} reports")
    drained, finished = wait_until(engine, "drained", amounts.processing_timeout)
    if not finished:
        table.note(f"{column}: outbox still had {drained.outbox_pending} pending after {amounts.processing_timeout:.0f} s")
    engine.dispose()


def measure_acknowledgements(table: Table, column: str, port: int, url: str, relay: RelaySink, amounts: Amounts) -> None:
    """Acknowledgement latency from the 250 to its arrival at the relay, at half the
    accepted rate measured for 8 sessions and 6 KB in this run."""
    accepted = table.accepted.get((column, 8, SMALL))
    if accepted is None:
        raise RuntimeError("no accepted rate for 8 sessions, 6 KB to pace by")
    pace = accepted / 2
    batch = mails(f"ack-{time.monotonic_ns()}", amounts.ack_messages, SMALL)
    run = asyncio_run(port, 8, batch, rate=pace)
    deadline = time.monotonic() + amounts.processing_timeout
    latencies: dict[str, float] = {}
    while time.monotonic() < deadline and len(latencies) < run.accepted:
        for record in relay.records():
            # The acknowledgement goes to the reporter, threaded to their report.
            if SENDER in record.to and record.in_reply_to in run.accepted_at and record.in_reply_to not in latencies:
                latencies[record.in_reply_to] = record.arrived - run.accepted_at[record.in_reply_to]
        time.sleep(0.25)
    values = list(latencies.values())
    missing = "" if len(values) == run.accepted else f", {run.accepted - len(values)} missing after {amounts.processing_timeout:.0f} s"
    table.put("ack latency p50 / p99 (250 → relay)", column, f"{p50_p99(values)} at {rate(pace)} msg/s{missing}", "p99 < 1 s")
    engine = polling_engine(url)
    wait_until(engine, "drained", amounts.processing_timeout)
    engine.dispose()


def measure_mailintake(table: Table, column: str, url: str, client: Client, amounts: Amounts, workdir: Path) -> None:
    name = column.split()[-1].lower()
    with relay_sink(workdir, f"relay-{name}") as relay, mailintake_running(workdir, name, url, relay) as (port, _):
        for size in SIZES:
            for sessions in SESSIONS:
                progress(f"{column}: {sessions_label(sessions)}, {size_label(size)}")
                attempt(table, f"{column}, {sessions_label(sessions)}, {size_label(size)}", lambda sessions=sessions, size=size: measure_mailintake_row(table, column, client, port, url, sessions, size, amounts))
        progress(f"{column}: acknowledgement latency")
        attempt(table, f"{column}, ack latency", lambda: measure_acknowledgements(table, column, port, url, relay, amounts))
        double = relay.double_sends()
        if double:
            table.note(f"{column}: {double} mails arrived twice at the relay")


def ratios(table: Table) -> None:
    for size in SIZES:
        for sessions in SESSIONS:
            aiosmtpd = table.accepted.get((AIOSMTPD_SINK, sessions, size))
            sink = table.accepted.get((SMTP_SINK, sessions, size))
            for column in COLUMNS:
                mine = table.accepted.get((column, sessions, size))
                if mine is None:
                    continue
                pair = [ratio(mine / reference) if reference else "—" for reference in (aiosmtpd, sink)]
                table.put(ratio_row(sessions, size), column, " / ".join(pair), "≥ 0.7 × aiosmtpd" if sessions == 8 and size == SMALL and column in (SQLITE, POSTGRESQL) else "")


# --- memory for one large message ---------------------------------------------------------


def measure_large_message(table: Table, url: str, amounts: Amounts, workdir: Path) -> None:
    """serve's peak RSS (VmHWM) before and after one large message is stored, processed
    and its mail sent; workers and parser processes are its children, reported apart."""
    size = amounts.large_message
    with relay_sink(workdir, "relay-rss") as relay, mailintake_running(workdir, "rss", url, relay, max_message_size=f"{2 * size // 1_000_000 + 1}MB") as (port, process):
        engine = polling_engine(url)
        before = peak_rss_kib(process.pid)
        children_before = children_peak_rss_kib(process.pid)
        message_id, content = large_mail(f"large-{time.monotonic_ns()}", size)
        run = asyncio_run(port, 1, [(message_id, content)])
        if run.accepted != 1:
            raise RuntimeError("the large message was refused")
        _, finished = wait_until(engine, "drained", amounts.processing_timeout)
        engine.dispose()
        if not finished:
            raise RuntimeError(f"not processed and sent within {amounts.processing_timeout:.0f} s")
        grown = (peak_rss_kib(process.pid) - before) / 1024
        children = {pid: peak - children_before.get(pid, 0) for pid, peak in children_peak_rss_kib(process.pid).items()}
    megabytes = len(content) / 1_000_000
    child = f"; children: largest +{max(children.values()) / 1024:,.0f} MiB" if children else ""
    table.put(f"serve peak RSS growth, one {megabytes:.0f} MB message", SQLITE, f"+{grown:,.0f} MiB ({grown * 1.048576 / megabytes:.1f}× the message){child}", "≤ 150 MB (≤ 6×)")


# --- two daemons on one PostgreSQL ----------------------------------------------------------


def stored_backlog(url: str, count: int) -> None:
    """A burst from `count` researchers (one mail each), as the listener would have stored
    it: one sender's mail is worked on one at a time, so a one-sender backlog could not
    show what a second daemon adds."""
    engine = create_database_engine(url)
    sessions = session_factory(engine)
    batch = mails(f"backlog-{time.monotonic_ns()}", count, SMALL)
    now = datetime.now(UTC)
    for start in range(0, count, 100):
        deliveries = [Delivery(now, "smtp", "127.0.0.1", "bench.example.org", f"researcher{start + index}@example.org", ("security@example.com",), content) for index, (_, content) in enumerate(batch[start : start + 100])]
        store_deliveries(sessions, deliveries)
    engine.dispose()


def backlog_rate(base_url: str, daemons: int, amounts: Amounts, workdir: Path) -> tuple[float, int, int]:
    """(reports/s, mails sent twice, reports) for `daemons` serve processes working off
    the same stored backlog in a fresh schema."""
    with postgresql_schema(base_url) as url, relay_sink(workdir, f"relay-daemons-{daemons}") as relay:
        stored_backlog(url, amounts.backlog)
        ports = [free_port() for _ in range(daemons)]
        configs = [mailintake_config(workdir, f"daemon-{daemons}-{index}", port, url, relay.port) for index, port in enumerate(ports)]
        processes: list[subprocess.Popen[bytes]] = []
        engine = polling_engine(url)
        try:
            for port, config in zip(ports, configs, strict=True):
                processes.append(launched(serve_command(config), workdir / f"daemon-{daemons}-{port}.log"))
            for port, process in zip(ports, processes, strict=True):
                wait_for_port(port, process, workdir / f"daemon-{daemons}-{port}.log")
            # From the moment all listen; what one did while another started is not counted.
            began, before = time.monotonic(), counts(engine)
            done, finished = wait_until(engine, "processed", amounts.processing_timeout)
            elapsed = time.monotonic() - began
            if not finished:
                raise RuntimeError(f"{done.done} of {done.inbound} processed within {amounts.processing_timeout:.0f} s")
            drained, finished = wait_until(engine, "drained", amounts.processing_timeout)
            if not finished:
                raise RuntimeError(f"outbox still had {drained.outbox_pending} pending")
        finally:
            engine.dispose()
            for process in processes:
                stop(process)
        return (done.done - before.done) / elapsed, relay.double_sends(), drained.reports


def measure_two_daemons(table: Table, base_url: str, amounts: Amounts, workdir: Path) -> None:
    one, one_double, one_reports = backlog_rate(base_url, 1, amounts, workdir)
    two, two_double, two_reports = backlog_rate(base_url, 2, amounts, workdir)
    table.put(
        f"1 vs 2 daemons, stored backlog of {amounts.backlog:,}: reports/s",
        POSTGRESQL,
        f"{rate(one)} vs {rate(two)} ({two / one:.2f}×); double sends {one_double} / {two_double}; reports {one_reports} / {two_reports}",
        "≥ 1.6×, 0 double sends",
    )


# --- periodic work: the scripts beside this one ---------------------------------------------


def script_result(script: str, arguments: list[str]) -> dict[str, Any]:
    """Runs bench/<script> with --json and returns the JSON object of its last line."""
    command = [sys.executable, str(REPO / "bench" / script), "--json", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)})
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise RuntimeError(f"{script} exited with {result.returncode}: {said[-1] if said else 'nothing said'}")
    return json.loads(lines[-1])


def script_options(script: str) -> str:
    result = subprocess.run([sys.executable, str(REPO / "bench" / script), "--help"], capture_output=True, text=True, timeout=60, cwd=REPO)
    return result.stdout


def database_arguments(script: str, reports: int, url: str | None) -> list[str]:
    """--reports and --database-url, as far as the script takes them."""
    options = script_options(script)
    given = ["--reports", str(reports)] if "--reports" in options else []
    return given + (["--database-url", url] if url and "--database-url" in options else [])


def summary(result: dict[str, Any]) -> str:
    """A script's JSON as a cell: the keys it has, in its order, numbers rounded."""
    parts = []
    for key, value in result.items():
        if key in ("database", "reports") or isinstance(value, (dict, list)):
            continue
        shown = f"{value:,.3g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        parts.append(f"{key.replace('_', ' ')} {shown}")
    return ", ".join(parts)


def database_urls(postgresql: str | None) -> list[tuple[str, AbstractContextManager[str | None]]]:
    columns: list[tuple[str, AbstractContextManager[str | None]]] = [(SQLITE, nullcontext(None))]
    if postgresql:
        columns.append((POSTGRESQL, postgresql_schema(postgresql)))
    return columns


def measure_scripts(table: Table, postgresql: str | None, amounts: Amounts) -> None:
    open_reports = f"{amounts.open_reports:,} open reports"
    per_database = (
        ("sla_pass.py", f"SLA pass, {open_reports} (half breached, alerted)", amounts.open_reports, sla_pass_cell, "< 0.2 s"),
        ("digest.py", f"daily digest, {open_reports} (half breached)", amounts.open_reports, digest_cell, "< 1 s, < 100 KB"),
        ("listings.py", f"listings, first page, {open_reports}: wall time / peak RSS", amounts.open_reports, listings_cell, "< 1 s, < 200 MB"),
        ("recompute.py", f"holidays add + recompute, {amounts.recompute_reports:,} open reports", amounts.recompute_reports, recompute_cell, ""),
    )
    for script, measure, reports, cell, target in per_database:
        if not (REPO / "bench" / script).exists():
            table.put(measure, SQLITE, "—", target)
            table.note(f"bench/{script} is not there yet: '—'")
            continue
        for column, database in database_urls(postgresql):
            progress(f"{script} on {column}")

            def work(
                script: str = script, measure: str = measure, reports: int = reports, cell: Callable[[dict[str, Any]], str] = cell, target: str = target, column: str = column, database: AbstractContextManager[str | None] = database
            ) -> None:
                table.put(measure, column, "—", target)
                with database as url:
                    table.put(measure, column, cell(script_result(script, database_arguments(script, reports, url))), target)

            attempt(table, f"{script} on {column}", work)
    progress("deadlines.py")

    def deadlines() -> None:
        result = script_result("deadlines.py", ["--samples", str(amounts.deadline_samples), "--reports", str(amounts.open_reports)])
        table.put("deadlines/s (calendar alone, no database)", SQLITE, f"{rate(result['warm_per_second'])} warm, {rate(result['cold_per_second'])} cold")

    attempt(table, "deadlines.py", deadlines)


def sla_pass_cell(result: dict[str, Any]) -> str:
    return f"{millis(result['seconds'])} ms, {result['enqueued']} enqueued, RSS +{result['peak_rss_growth_mib']:.0f} MiB"


def digest_cell(result: dict[str, Any]) -> str:
    if not {"seconds", "mail_bytes"} <= result.keys():
        return summary(result)
    memory = f", RSS +{result['rss_growth_mib']:.0f} MiB" if "rss_growth_mib" in result else f", peak RSS {result['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in result else ""
    return f"{millis(result['seconds'])} ms, {result['mail_bytes'] / 1000:,.0f} KB mail{memory}"


def listings_cell(result: dict[str, Any]) -> str:
    """The slowest and the largest first page among the listing commands, each run as an
    admin runs it (a process of its own, interpreter start included)."""
    commands = [command for command in result.get("commands", []) if "--limit 0" not in str(command.get("command", ""))]
    if not commands or not all({"command", "seconds", "peak_rss_mib"} <= command.keys() for command in commands):
        return summary(result)
    slowest = max(commands, key=lambda command: command["seconds"])
    largest = max(commands, key=lambda command: command["peak_rss_mib"])
    return f"slowest {slowest['seconds']:.2f} s (`{slowest['command']}`), largest {largest['peak_rss_mib']:.0f} MiB (`{largest['command']}`), {len(commands)} commands"


def recompute_cell(result: dict[str, Any]) -> str:
    return f"{result['recompute_seconds']:.2f} s, {result['moved']:,} deadlines moved"


# --- the machine and the table ------------------------------------------------------------


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def postfix_version() -> str:
    """The Debian package's version: postconf needs a main.cf, which a bare install lacks."""
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "postfix"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown"
    return result.stdout.strip() or "unknown"


def machine(postgresql: str | None) -> list[str]:
    database = postgresql_version(postgresql) if postgresql else "not measured"
    return [
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {memory_gib():.0f} GiB RAM, {platform.system()} {platform.release()}",
        f"software: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, PostgreSQL {database}, Postfix {postfix_version() if smtp_sink_path() else 'not installed'}",
    ]


def markdown(table: Table) -> list[str]:
    header = ["measure", *COLUMNS, "target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for measure, cells in table.rows.items():
        lines.append("| " + " | ".join([measure, *(cells.get(column, "—") for column in COLUMNS), table.targets.get(measure, "")]) + " |")
    return lines


def ordered(table: Table) -> Table:
    """The matrix rows grouped per (sessions, size), then the rest as measured."""
    matrix = [row(sessions, size) for size in SIZES for sessions in SESSIONS for row in (accepted_row, ratio_row, reports_row, transaction_row)]
    rows = {measure: table.rows[measure] for measure in matrix if measure in table.rows}
    rows |= {measure: cells for measure, cells in table.rows.items() if measure not in rows}
    return Table(rows, table.targets, table.notes, table.accepted)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for trying the benchmark out")
    parser.add_argument("--database-url", default=DEFAULT_POSTGRESQL, help=f"PostgreSQL to measure on (a fresh schema per run, dropped after); default {DEFAULT_POSTGRESQL}")
    parser.add_argument("--skip-postgresql", action="store_true")
    parser.add_argument("--asyncio-client", action="store_true", help="send with the asyncio client even where smtp-source is installed")
    parser.add_argument("--only", choices=("smtp", "memory", "daemons", "scripts"), action="append", help="run only these parts (repeatable); default: all")
    return parser.parse_args()


def main() -> None:
    # SIGTERM unwinds like Ctrl-C: servers stopped, schemas dropped, temp files removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    options = arguments()
    amounts = QUICK if options.quick else FULL
    parts = set(options.only or ("smtp", "memory", "daemons", "scripts"))
    table = Table()
    postgresql: str | None = None
    if not options.skip_postgresql:
        reason = postgresql_unreachable(options.database_url)
        postgresql = None if reason else options.database_url
        if reason:
            table.note(f"{reason}: PostgreSQL skipped")
    sink = smtp_sink_path()
    client = Client(None if options.asyncio_client else smtp_source_path())
    header = machine(postgresql)
    for line in header:
        progress(line)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mailintake-bench-") as directory:
        workdir = Path(directory)
        if "smtp" in parts:
            if sink:
                attempt(table, SMTP_SINK, lambda: measure_sink_at(table, SMTP_SINK, sink, client, amounts, workdir))
            else:
                table.note("Postfix is not installed (Debian package postfix): no smtp-sink column, asyncio client")
            attempt(table, AIOSMTPD_SINK, lambda: measure_sink_at(table, AIOSMTPD_SINK, None, client, amounts, workdir))
            with sqlite_database(workdir, "sqlite") as url:
                attempt(table, SQLITE, lambda: measure_mailintake(table, SQLITE, url, client, amounts, workdir))
            if postgresql:
                with postgresql_schema(postgresql) as url:
                    attempt(table, POSTGRESQL, lambda: measure_mailintake(table, POSTGRESQL, url, client, amounts, workdir))
            ratios(table)
        if "memory" in parts:
            progress("serve's peak RSS for one large message")
            with sqlite_database(workdir, "rss") as url:
                attempt(table, "large message", lambda: measure_large_message(table, url, amounts, workdir))
        if "daemons" in parts and postgresql:
            progress("1 vs 2 daemons on PostgreSQL")
            attempt(table, "1 vs 2 daemons", lambda: measure_two_daemons(table, postgresql, amounts, workdir))
        if "scripts" in parts:
            measure_scripts(table, postgresql, amounts)
    print_report(table, header, client, amounts, time.monotonic() - began)


def measure_sink_at(table: Table, column: str, smtp_sink: str | None, client: Client, amounts: Amounts, workdir: Path) -> None:
    port_command: Callable[[int], list[str]] = (lambda port: smtp_sink_command(smtp_sink, port)) if smtp_sink else aiosmtpd_sink_command
    measure_sink(table, column, port_command, client, amounts, workdir)


def print_report(table: Table, header: list[str], client: Client, amounts: Amounts, seconds: float) -> None:
    for line in header:
        print(line)
    timed = {size: f" (+{amounts.timing_messages[size]} timed)" if client.smtp_source else "" for size in SIZES}
    counts_line = ", ".join(f"{size_label(size)}: sinks {amounts.sink_messages[size]:,}, mailintake {amounts.intake_messages[size]:,}{timed[size]}" for size in SIZES)
    print(f"client: {client.name()}, one message per connection; messages per row: {counts_line}")
    timing = "from a short asyncio-client run right after smtp-source's (smtp-source reports no per-message times)" if client.smtp_source else "from the same asyncio-client run"
    print(f"transaction time: MAIL FROM to the reply after the data, {timing}; reports/s: from the first send until every delivery is processed")
    print()
    for line in markdown(ordered(table)):
        print(line)
    if table.notes:
        print()
        for text in table.notes:
            print(f"- {text}")
    print(f"\n(run took {seconds / 60:.1f} min)")


if __name__ == "__main__":
    main()
