"""The import contract of ARCHITECTURE.md, read from the source (every import statement,
including those inside functions and under TYPE_CHECKING).

1. A package imports only packages at or before it in ORDER: the foundation, then the
   stages in the order mail flows, then what runs them. A stage never reaches forward.
2. The pure core imports no database, event loop, network, process or storage module.
3. Nothing but the CLI imports the service or the CLI.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mailintake"

ORDER = (
    "core",
    "calendar",
    "sla",
    "config",
    "storage",
    "deadlines",
    "intake",
    "parse",
    "route",
    "reports",
    "conversation",
    "outbound",
    "pipeline",
    "jobs",
    "service",
    "cli",
)
PURE = (
    "core",
    "calendar",
    "sla",
    "config",
    "parse",
    "route/decision.py",
    "route/machine_mail.py",
    "conversation/commands",
    "conversation/reply_text.py",
    "outbound/compose.py",
    "outbound/templates.py",
)
# Modules of a pure package that do I/O on purpose, each with its reason.
NOT_PURE = {
    "parse/pool.py": "runs the parser in a bounded child process",
}
IMPURE_IMPORTS = (
    "sqlalchemy",
    "alembic",
    "asyncio",
    "socket",
    "ssl",
    "threading",
    "multiprocessing",
    "concurrent",
    "subprocess",
    "aiosmtpd",
    "aiosmtplib",
    "dns.resolver",
    "apscheduler",
    "mailintake.storage",
)
ENTRY_POINTS = {"__main__.py": "cli", "__init__.py": "core"}


def layer_of(relative: Path) -> str:
    if len(relative.parts) == 1:
        return ENTRY_POINTS.get(relative.name, relative.stem)
    return relative.parts[0]


def imported_modules(source: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # `from mailintake import pipeline` names a module too.
            yield from (f"{node.module}.{alias.name}" for alias in node.names if node.module == "mailintake")


def is_pure(relative: Path) -> bool:
    text = relative.as_posix()
    if text in NOT_PURE:
        return False
    return any(text == pure or text.startswith(pure.rstrip("/") + "/") for pure in PURE)


def contract_breaches(package: Path) -> list[str]:
    breaches = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        layer = layer_of(relative)
        for module in imported_modules(path.read_text()):
            breaches += module_breaches(relative, layer, module)
    return breaches


def module_breaches(relative: Path, layer: str, module: str) -> list[str]:
    found = []
    where = f"mailintake/{relative.as_posix()} imports {module}"
    if module.startswith("mailintake."):
        target = module.split(".")[1]
        if target in ORDER and layer in ORDER and ORDER.index(target) > ORDER.index(layer):
            found.append(f"{where}: {target} comes after {layer}")
        if target in ("service", "cli") and layer != "cli" and target != layer:
            found.append(f"{where}: only the CLI may import {target}")
    if is_pure(relative) and any(module == name or module.startswith(name + ".") for name in IMPURE_IMPORTS):
        found.append(f"{where}: a pure module does no I/O")
    return found


def test_the_source_keeps_the_import_contract() -> None:
    assert contract_breaches(PACKAGE) == []


def test_every_package_has_its_place_in_the_order() -> None:
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.name not in ENTRY_POINTS}
    assert packages | modules == set(ORDER)


def test_every_pure_entry_exists() -> None:
    for entry in PURE + tuple(NOT_PURE):
        assert (PACKAGE / entry).exists() or (PACKAGE / f"{entry}.py").exists(), entry


@pytest.mark.parametrize(
    ("relative", "source", "breach"),
    [
        ("calendar/business.py", "import sqlalchemy\n", "a pure module does no I/O"),
        ("sla/policy.py", "from sqlalchemy.orm import Session\n", "a pure module does no I/O"),
        ("parse/message.py", "def f():\n    from mailintake.storage.models import Report\n", "a pure module does no I/O"),
        ("route/decision.py", "import asyncio\n", "a pure module does no I/O"),
        ("parse/message.py", "from mailintake.route.decision import Route\n", "route comes after parse"),
        ("intake/listener.py", "from mailintake.pipeline import Services\n", "pipeline comes after intake"),
        ("jobs/sla_pass.py", "from mailintake.service.daemon import serve\n", "only the CLI may import service"),
        ("outbound/notices.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mailintake.cli import main\n", "only the CLI may import cli"),
    ],
)
def test_the_contract_catches_a_breach(tmp_path: Path, relative: str, source: str, breach: str) -> None:
    module = tmp_path / relative
    module.parent.mkdir(parents=True)
    module.write_text(source)
    breaches = contract_breaches(tmp_path)
    assert any(item.endswith(breach) for item in breaches), breaches


def test_the_contract_allows_what_it_should(tmp_path: Path) -> None:
    allowed = {
        "outbound/notices.py": "from mailintake.reports.read_model import report_view\nimport sqlalchemy\n",
        "parse/pool.py": "import multiprocessing\nfrom mailintake.config.schema import IntakeConfig\n",
        "cli/main.py": "from mailintake.service.daemon import run_serve\n",
        "service/daemon.py": "from mailintake.service.workers import Worker\nimport asyncio\n",
    }
    for relative, source in allowed.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(source)
    assert contract_breaches(tmp_path) == []
