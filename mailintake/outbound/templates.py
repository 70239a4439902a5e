"""Mail templates: Jinja2 files rendered in the sandbox. Pure: no clock, database or network.

A deployment's own directory takes precedence over the shipped one. A template's output
starts with `Subject: <subject>`, one empty line, then the body; an HTML alternative
(`<name>.html.j2`, autoescaped) is the body only. Translations live in language
directories (`de/acknowledgement.txt.j2`, `de-de/...`, lowercase).

Only template files are ever compiled: context values are data and come out literally.
Error messages name the file and line but never quote a context value, because context
values are confidential report data and errors are shown to admins and logged.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.exceptions import SecurityError, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

REQUIRED = (
    "acknowledgement",
    "staff_notification",
    "sla_warning",
    "sla_breach",
    "sla_escalation",
    "progress_reminder",
    "sla_alert_burst",
    "resolution",
    "daily_digest",
    "delivery_failure",
    "staff_reply",
    "reporter_reply",
    "command_error",
    "flagged_report",
    "rejected",
    "duplicate",
    "out_of_scope",
    "unprocessable_mail",
    "auto_reply_limit",
    "held_acknowledgement",
)
TEXT_SUFFIX = ".txt.j2"
HTML_SUFFIX = ".html.j2"
SHIPPED_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "templates",
    Path(__file__).resolve().parents[1] / "_templates",
)

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_LANGUAGE_RE = re.compile(r"[a-z]{2,8}(?:-[a-z0-9]{1,8})*")
_SUBJECT_RE = re.compile(r"subject:[ \t]*(?P<subject>.*?)[ \t]*", re.IGNORECASE)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class TemplateError(Exception):
    """A template that is missing, does not compile or does not render; one line. Not a
    ValueError: callers treat ValueError as bad data (an address that cannot be written),
    and a broken template must never be taken for that."""


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str | None


@dataclass(frozen=True)
class Variant:
    """The text template render() uses for a name and language, and a fingerprint of its
    sources (text and HTML part): an edited template is a different variant."""

    path: Path
    relative: str
    fingerprint: str


class _MissingValue(StrictUndefined):
    """Jinja's own message can quote a data-derived key (`mapping[report.subject]`); this one
    carries only the missing name, which the caller shows only if the template spells it."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        name = self._undefined_name
        return name if isinstance(name, str) else ""


class Templates:
    def __init__(self, override_dir: Path | None) -> None:
        self._directories = template_directories(override_dir)
        self._environment = sandboxed_environment(self._directories)

    def render(self, name: str, context: Mapping[str, object], language: str | None = None) -> RenderedMail:
        directory, prefix = self._located(name, language)
        text_name = f"{prefix}{name}{TEXT_SUFFIX}"
        subject, body = split_subject(self._rendered(directory, text_name, context), directory / text_name)
        html_name = f"{prefix}{name}{HTML_SUFFIX}"
        html = self._rendered(directory, html_name, context) if (directory / html_name).is_file() else None
        return RenderedMail(subject=subject, text=body, html=html)

    def check(self, names: Iterable[str]) -> None:
        """Compile every variant of the named templates (all languages, HTML alternatives)
        and render each one render() can reach with the sample contexts, so a broken
        deployment override (an undefined name, a blocked attribute) stops the daemon at
        startup rather than failing every mail at 3 a.m."""
        for name in names:
            self._require_untranslated(name)
            variants = self._variants(name)
            for relative in variants:
                self._compile(relative)
            samples = sample_contexts(name)
            for language in variant_languages(variants):
                for sample in samples:
                    self._render_sample(name, sample, language)

    def variant(self, name: str, language: str | None = None) -> Variant:
        directory, prefix = self._located(name, language)
        relative = f"{prefix}{name}{TEXT_SUFFIX}"
        digest = hashlib.sha256()
        for suffix in (TEXT_SUFFIX, HTML_SUFFIX):
            path = directory / f"{prefix}{name}{suffix}"
            digest.update(path.read_bytes() if path.is_file() else b"")
            digest.update(b"\0")
        return Variant(path=directory / relative, relative=relative, fingerprint=digest.hexdigest()[:16])

    def _render_sample(self, name: str, sample: Mapping[str, object], language: str | None) -> None:
        try:
            self.render(name, sample, language)
        except TemplateError as error:
            raise TemplateError(f"{error} (rendered with a sample report at start)") from None

    def _located(self, name: str, language: str | None) -> tuple[Path, str]:
        """The directory and language prefix of the text template to use. Directories are
        searched in order and the first one holding any candidate wins, so a deployment that
        overrides a template is never mixed with a shipped translation or HTML part."""
        valid_name(name)
        prefixes = language_prefixes(language)
        for directory in self._directories:
            for prefix in prefixes:
                if (directory / f"{prefix}{name}{TEXT_SUFFIX}").is_file():
                    return directory, prefix
        raise TemplateError(f"no template {name}{TEXT_SUFFIX} in {self._searched()}")

    def _require_untranslated(self, name: str) -> None:
        valid_name(name)
        if not any((directory / f"{name}{TEXT_SUFFIX}").is_file() for directory in self._directories):
            raise TemplateError(f"no template {name}{TEXT_SUFFIX} in {self._searched()}")

    def _variants(self, name: str) -> list[str]:
        found: set[str] = set()
        for directory in self._directories:
            for pattern in (f"{name}{TEXT_SUFFIX}", f"{name}{HTML_SUFFIX}", f"*/{name}{TEXT_SUFFIX}", f"*/{name}{HTML_SUFFIX}"):
                for path in directory.glob(pattern):
                    relative = path.relative_to(directory)
                    require_language_directory(directory, relative)
                    require_text_beside_html(path)
                    found.add(relative.as_posix())
        return sorted(found)

    def _searched(self) -> str:
        return " or ".join(str(directory) for directory in self._directories)

    def _compile(self, relative: str) -> None:
        try:
            self._environment.get_template(relative)
        except TemplateSyntaxError as error:
            raise TemplateError(syntax_error_message(error)) from None
        except TemplateNotFound:
            raise TemplateError(f"template {relative} not found in {self._searched()}") from None

    def _rendered(self, directory: Path, relative: str, context: Mapping[str, object]) -> str:
        try:
            template = self._environment.get_template(relative)
            require_loaded_from(directory / relative, template.filename)
            return template.render(dict(context))
        except TemplateError:
            raise
        except TemplateSyntaxError as error:
            raise TemplateError(syntax_error_message(error)) from None
        except Exception as error:
            raise TemplateError(render_error_message(error, relative, self._directories)) from None


def checked_templates(override_dir: Path | None) -> Templates:
    """The templates, each reachable variant rendered once with its sample: a broken one
    raises TemplateError naming the file before anything is sent."""
    templates = Templates(override_dir)
    templates.check(REQUIRED)
    return templates


def variant_languages(relatives: Iterable[str]) -> list[str | None]:
    """The languages the variants are for: None for the default, "de" for `de/…`."""
    languages: dict[str | None, None] = {None: None}
    for relative in relatives:
        head, _, rest = relative.partition("/")
        if rest:
            languages.setdefault(head, None)
    return list(languages)


def template_directories(override_dir: Path | None) -> tuple[Path, ...]:
    shipped = shipped_directory()
    if override_dir is None:
        return (shipped,)
    if not override_dir.is_dir():
        raise TemplateError(f"templates directory {override_dir} does not exist or is not a directory")
    return (override_dir.resolve(), shipped)


def shipped_directory() -> Path:
    """templates/ beside the package in a checkout, mailintake/_templates in a wheel. A
    candidate counts only if it holds the acknowledgement, so an unrelated top-level
    `templates` directory in site-packages is never taken for ours."""
    for candidate in SHIPPED_CANDIDATES:
        if (candidate / f"{REQUIRED[0]}{TEXT_SUFFIX}").is_file():
            return candidate
    raise TemplateError(f"shipped templates not found (looked in {' and '.join(map(str, SHIPPED_CANDIDATES))})")


def sandboxed_environment(directories: Iterable[Path]) -> SandboxedEnvironment:
    """The immutable sandbox also stops a template from changing the caller's lists and
    mappings (`report.urls.append(...)`). auto_reload is off: what check() compiled at
    startup is what renders."""
    environment = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader([str(directory) for directory in directories]),
        undefined=_MissingValue,
        autoescape=select_autoescape(
            enabled_extensions=("html.j2",),
            disabled_extensions=("txt.j2",),
            default_for_string=True,
            default=True,
        ),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    environment.filters["oneline"] = one_line
    return environment


def one_line(value: object) -> str:
    """Template filter for values in a Subject line: control characters and line breaks
    become spaces, runs of whitespace one space."""
    return " ".join(_CONTROL_RE.sub(" ", str(value)).split())


def valid_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise TemplateError(f"invalid template name {name!r}: expected lowercase letters, digits and '_'")
    return name


def language_prefixes(language: str | None) -> tuple[str, ...]:
    """Directory prefixes to try, most specific first: "de-DE" → ("de-de/", "de/", "").
    A tag that is not a plain language tag (it may come from a reporter's mail) is ignored."""
    if not language:
        return ("",)
    tag = language.strip().lower().replace("_", "-")
    if not _LANGUAGE_RE.fullmatch(tag):
        return ("",)
    subtags = tag.split("-")
    return tuple(f"{'-'.join(subtags[:count])}/" for count in range(len(subtags), 0, -1)) + ("",)


def split_subject(output: str, path: Path) -> tuple[str, str]:
    """(subject, body) of a text template's output: `Subject: …`, an empty line, the body."""
    first, _, rest = output.partition("\n")
    match = _SUBJECT_RE.fullmatch(first.rstrip("\r"))
    if match is None or not match.group("subject"):
        raise TemplateError(f"template {path}: the first line must be 'Subject: <subject>'")
    blank, _, body = rest.partition("\n")
    if blank.strip():
        raise TemplateError(f"template {path}: the Subject line must be followed by an empty line (a value with a line break in the subject? use |oneline)")
    return match.group("subject"), body


def require_language_directory(directory: Path, relative: Path) -> None:
    """render() looks in lowercase tag directories only; a `de-DE/` would be silently unused."""
    if len(relative.parts) > 1 and not _LANGUAGE_RE.fullmatch(relative.parts[0]):
        raise TemplateError(f"template {directory / relative}: {relative.parts[0]!r} is not a lowercase language tag like 'de' or 'de-ch'")


def require_text_beside_html(path: Path) -> None:
    if path.name.endswith(HTML_SUFFIX):
        text = path.with_name(path.name[: -len(HTML_SUFFIX)] + TEXT_SUFFIX)
        if not text.is_file():
            raise TemplateError(f"template {path}: an HTML alternative needs {text.name} beside it")


def require_loaded_from(expected: Path, filename: str | None) -> None:
    """An HTML alternative in an earlier directory without its text template beside it
    would otherwise be paired with another directory's text template."""
    if filename is None or Path(filename) != expected:
        require_text_beside_html(Path(filename or expected))
        raise TemplateError(f"template {filename} is used in place of {expected}")


def syntax_error_message(error: TemplateSyntaxError) -> str:
    where = error.filename or error.name or "<unknown>"
    return f"template {where}:{error.lineno}: {one_line(error.message or 'syntax error')}"


def render_error_message(error: Exception, relative: str, directories: Iterable[Path]) -> str:
    """One line naming the failing template file and line. Only names that the template
    itself spells are quoted; anything else could be report data."""
    path, line = failing_template_line(error.__traceback__, tuple(directories))
    where = f"{path}:{line}" if path is not None else relative
    if isinstance(error, SecurityError):
        return f"template {where}: blocked by the sandbox (unsafe attribute or operation)"
    if isinstance(error, UndefinedError):
        name = error.message or ""
        shown = f" {name!r}" if path is not None and spelled_in(path, name) else ""
        return f"template {where}: undefined value{shown}"
    if isinstance(error, TemplateNotFound):
        shown = f" {error.name!r}" if path is not None and spelled_in(path, str(error.name)) else ""
        return f"template {where}: included template{shown} not found"
    return f"template {where}: {type(error).__name__} while rendering"


def failing_template_line(traceback: TracebackType | None, directories: tuple[Path, ...]) -> tuple[Path | None, int | None]:
    """The innermost traceback frame in one of our template files (Jinja rewrites render
    tracebacks so that frames carry the template's file name and line)."""
    found: tuple[Path | None, int | None] = (None, None)
    while traceback is not None:
        filename = Path(traceback.tb_frame.f_code.co_filename)
        if any(filename.is_relative_to(directory) for directory in directories):
            found = (filename, traceback.tb_lineno)
        traceback = traceback.tb_next
    return found


def spelled_in(path: Path, name: str) -> bool:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
        return False
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return re.search(rf"\b{re.escape(name)}\b", source) is not None


# --- sample contexts: what check() renders every template with at start ---------------
# One per template, with the keys outbound/notices.py passes (tests compare the two), every
# optional value set and every list filled; quiet_sample() gives the other branch of
# each `{% if %}`. A new template needs a sample here, or check() refuses it.

_SAMPLE_DEADLINES = (
    {"name": "acknowledge", "title": "Acknowledgement", "due": "Tue 24 Nov 2026 10:15 CET", "explanation": []},
    {"name": "assess", "title": "Initial assessment", "due": "Mon 28 Dec 2026 17:00 CET", "explanation": ["2026-12-25 Christmas Day (NL)"]},
)
_SAMPLE_REPORT = {
    "tracking_id": "SEC-2026-0042",
    "subject": "Stored XSS in profile page",
    "received_at": "Mon 23 Nov 2026 10:15 CET",
    "status": "triaged",
    "severity": "high",
    "suggested_severity": "high",
    "reporter": "researcher@example.org",
    "flag": "refers to a report of another sender",
    "related": "SEC-2026-0041",
    "assignee": "alice@example.com",
    "credit_as": "Jane Researcher",
    "urls": ["https://app.example.com/profile"],
    "attachments": [
        {"filename": "poc.html", "content_type": "text/html", "size": 2048, "sha256": "ab" * 32, "attached": True},
        {"filename": "capture.pcap", "content_type": "application/octet-stream", "size": 12_000_000, "sha256": "cd" * 32, "attached": False},
    ],
    "more_attachments": 3,
    "left_out": ["29000 of 30000 parts left out"],
    "next_deadline": {"title": "Initial assessment", "due": "Mon 28 Dec 2026 17:00 CET"},
}
_QUIET_REPORT = _SAMPLE_REPORT | {
    "status": "new",
    "severity": None,
    "suggested_severity": None,
    "flag": None,
    "related": None,
    "assignee": None,
    "credit_as": None,
    "urls": [],
    "attachments": [],
    "more_attachments": 0,
    "left_out": [],
    "next_deadline": None,
}
_SAMPLE_MILESTONE = {"name": "assess", "title": "Initial assessment", "due": "Thu 26 Nov 2026 17:00 CET", "state": "warning", "left": "2 h 15 min business time left"}
_SAMPLE_DIGEST_ITEM = {"tracking_id": "SEC-2026-0042", "subject": "Stored XSS in profile page", "milestone": "Initial assessment", "due": "Mon 28 Dec 2026 17:00 CET"}
_COMMON = {"organisation": "Example Corp", "policy_url": "https://www.example.com/security", "now": "2026-11-23T09:16+00:00"}
_ABOUT_REPORT = _COMMON | {"report": _SAMPLE_REPORT, "deadlines": list(_SAMPLE_DEADLINES)}
_TO_REPORTER = _ABOUT_REPORT | {
    "reply_address": "security+r42-abcdefghijklmnop@example.com",
    "subject": "Stored XSS in profile page",
    "text": "Thank you, we have reproduced the issue.",
    "assessment": True,
    "eta": "2027-01-15",
}
_STAFF_REPLY_ADDRESS = "security+s42-abcdefghijklmnop@example.com"

SAMPLE_CONTEXTS: Mapping[str, Mapping[str, object]] = {
    "acknowledgement": _ABOUT_REPORT | {"reply_address": "security+r42-abcdefghijklmnop@example.com"},
    "staff_notification": _ABOUT_REPORT
    | {
        "body": "Steps to reproduce:\n1. Open /profile\n",
        "reply_address": _STAFF_REPLY_ADDRESS,
        "commands": [{"usage": "#status triaged|accepted|fixing|resolved", "help": "set the report's status"}],
    },
    "sla_warning": _ABOUT_REPORT | {"milestone": _SAMPLE_MILESTONE},
    "sla_breach": _ABOUT_REPORT | {"milestone": _SAMPLE_MILESTONE | {"state": "breached", "left": "overdue by 3 h"}},
    "sla_escalation": _ABOUT_REPORT | {"milestone": _SAMPLE_MILESTONE | {"state": "breached", "left": "overdue by 1 day 2 h"}},
    "progress_reminder": _ABOUT_REPORT | {"milestone": _SAMPLE_MILESTONE | {"name": "update", "title": "Progress update", "left": "1 business day 2 h 15 min left"}},
    "sla_alert_burst": _COMMON
    | {
        "kind": "sla_breach",
        "count": 100,
        "by_milestone": [{"title": "Initial assessment", "count": 60}, {"title": "Acknowledgement", "count": 40}],
        "alerts": [_SAMPLE_DIGEST_ITEM | {"left": "overdue by 3 h"}],
    },
    "resolution": _TO_REPORTER,
    "staff_reply": _TO_REPORTER,
    "rejected": _TO_REPORTER,
    "duplicate": _TO_REPORTER,
    "out_of_scope": _TO_REPORTER,
    "daily_digest": _COMMON
    | {
        "date": "2026-11-23",
        "counts": {"open_reports": 1234, "overdue": 57, "warning": 3, "due_today": 1, "due_this_week": 1},
        "open_by_status": [{"status": "new", "count": 1000}, {"status": "triaged", "count": 234}],
        "open_reports": [_SAMPLE_REPORT],
        "overdue": [_SAMPLE_DIGEST_ITEM],
        "due_today": [_SAMPLE_DIGEST_ITEM],
        "due_this_week": [_SAMPLE_DIGEST_ITEM],
    },
    "delivery_failure": _COMMON
    | {
        "failure": {"kind": "acknowledgement", "recipients": ["researcher@example.org"], "reply": "550 5.1.1 user unknown", "attempts": 3, "tracking_id": "SEC-2026-0042"},
    },
    "reporter_reply": _ABOUT_REPORT
    | {
        "subject": "More details",
        "body": "One more detail.\n",
        "reply_address": _STAFF_REPLY_ADDRESS,
        "resumed": True,
        "verified": True,
        "attachments": _SAMPLE_REPORT["attachments"],
        "more_attachments": 3,
    },
    "command_error": _ABOUT_REPORT | {"errors": ["line 1: unknown command #stauts (did you mean #status?)"], "carried_out": True},
    "flagged_report": _ABOUT_REPORT | {"flag": "unauthenticated staff address", "related": "SEC-2026-0041"},
    "auto_reply_limit": _ABOUT_REPORT | {"limit": 5},
    "held_acknowledgement": _COMMON
    | {
        "limit": 5,
        "reports": [
            {"tracking_id": "SEC-2026-0042", "subject": "Stored XSS in profile page", "received_at": "Mon 23 Nov 2026 10:15 CET", "reply_address": "security+r42-abcdefghijklmnop@example.com", "deadlines": list(_SAMPLE_DEADLINES[1:])},
            {"tracking_id": "SEC-2026-0043", "subject": "Open redirect in login", "received_at": "Mon 23 Nov 2026 10:20 CET", "reply_address": "security+r43-abcdefghijklmnop@example.com", "deadlines": []},
        ],
    },
    "unprocessable_mail": _COMMON | {"inbound": {"id": 42, "reason": "parse timed out after 30 s; no report could be made from its raw bytes either (ValueError)"}},
}
_QUIET_CHANGES: Mapping[str, object] = {
    "policy_url": "",
    "report": _QUIET_REPORT,
    "deadlines": [],
    "text": "",
    "assessment": False,
    "eta": None,
    "resumed": False,
    "verified": False,
    "carried_out": False,
    "related": None,
    "attachments": [],
    "more_attachments": 0,
    "counts": {"open_reports": 1, "overdue": 0, "warning": 0, "due_today": 0, "due_this_week": 0},
    "open_by_status": [{"status": "new", "count": 1}],
    "open_reports": [_QUIET_REPORT],
    "overdue": [],
    "due_today": [],
    "due_this_week": [],
    # A combined SLA alert's other wording: not overdue, nothing listed.
    "kind": "progress_reminder",
    "alerts": [],
}


def sample_contexts(name: str) -> tuple[dict[str, object], dict[str, object]]:
    """The full sample of a template and its quiet twin (optional values unset, lists
    empty, flags flipped); fresh copies, so a render cannot change the samples."""
    if name not in SAMPLE_CONTEXTS:
        raise TemplateError(f"no sample context for template {name}: add one to SAMPLE_CONTEXTS in mailintake/outbound/templates.py")
    full = copy.deepcopy(dict(SAMPLE_CONTEXTS[name]))
    return full, quiet_sample(full)


def quiet_sample(sample: Mapping[str, object]) -> dict[str, object]:
    quiet = copy.deepcopy(dict(sample)) | {key: copy.deepcopy(value) for key, value in _QUIET_CHANGES.items() if key in sample}
    failure = quiet.get("failure")
    if isinstance(failure, dict):
        quiet["failure"] = failure | {"tracking_id": None}
    return quiet
