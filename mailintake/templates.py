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
)
TEXT_SUFFIX = ".txt.j2"
HTML_SUFFIX = ".html.j2"
SHIPPED_CANDIDATES = (
    Path(__file__).resolve().parent.parent / "templates",
    Path(__file__).resolve().parent / "_templates",
)

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_LANGUAGE_RE = re.compile(r"[a-z]{2,8}(?:-[a-z0-9]{1,8})*")
_SUBJECT_RE = re.compile(r"subject:[ \t]*(?P<subject>.*?)[ \t]*", re.IGNORECASE)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class TemplateError(ValueError):
    """A template that is missing, does not compile or does not render; one line."""


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str | None


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
        """Compile every variant of the named templates (all languages, HTML alternatives),
        so a broken deployment override stops the daemon at startup rather than at 3 a.m."""
        for name in names:
            self._require_untranslated(name)
            for relative in self._variants(name):
                self._compile(relative)

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
        raise TemplateError(
            f"template {path}: the Subject line must be followed by an empty line "
            "(a value with a line break in the subject? use |oneline)"
        )
    return match.group("subject"), body


def require_language_directory(directory: Path, relative: Path) -> None:
    """render() looks in lowercase tag directories only; a `de-DE/` would be silently unused."""
    if len(relative.parts) > 1 and not _LANGUAGE_RE.fullmatch(relative.parts[0]):
        raise TemplateError(
            f"template {directory / relative}: {relative.parts[0]!r} is not a lowercase language tag like 'de' or 'de-ch'"
        )


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
