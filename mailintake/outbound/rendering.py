"""From a template and its context to an outbox row: render, compose, enqueue. A template
that fails on real data costs that one mail, an error line and one alert to staff per
template variant, never the transaction it is rendered in."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from mailintake.core.tokens import Side
from mailintake.outbound.addressing import Addressing, recipient_addresses
from mailintake.outbound.compose import compose, message_bytes
from mailintake.outbound.outbox import Outgoing, enqueue, key_exists
from mailintake.outbound.templates import RenderedMail, TemplateError, Templates, Variant
from mailintake.route.machine_mail import LOOP_HEADER
from mailintake.storage.models import Report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MailWriter:
    """Writes the mail a notice decided on: `alerts` are who hear of a failing template."""

    templates: Templates
    addressing: Addressing
    sender_name: str
    organisation: str
    policy_url: str
    alerts: tuple[str, ...]

    def enqueue_mail(
        self,
        session: Session,
        key: str,
        template: str,
        recipients: Iterable[str],
        context: dict[str, Any],
        now: datetime,
        *,
        report: Report | None = None,
        in_reply_to: str | None = None,
        auto_submitted: str = "auto-generated",
        auto_reply_to: str | None = None,
        attachments: Sequence[tuple[str, str, bytes]] = (),
        language: str | None = None,
        reply_side: Side = "staff",
        references: Sequence[str] | None = None,
    ) -> Outgoing | None:
        """The mail as enqueued, or None if there was nobody to send it to, it already was,
        or its template failed (logged, and staff alerted once per template). Raises
        ValueError when compose refuses it (an address or attachment it cannot write)."""
        to = recipient_addresses(recipients)
        if not to:
            log.warning("no recipients configured for %s mail; nothing sent", template)
            return None
        if key_exists(session, key):
            # Already enqueued (an earlier pass, before a restart): don't render it again.
            return None
        rendered = self.rendered_or_alerted(session, template, self.common_context(now) | context, language, report, now)
        if rendered is None:
            return None
        return self.enqueue_rendered(
            session,
            key,
            template,
            to,
            rendered,
            now,
            report=report,
            in_reply_to=in_reply_to,
            auto_submitted=auto_submitted,
            auto_reply_to=auto_reply_to,
            attachments=attachments,
            reply_side=reply_side,
            references=references,
        )

    def enqueue_rendered(
        self,
        session: Session,
        key: str,
        kind: str,
        to: tuple[str, ...],
        rendered: RenderedMail,
        now: datetime,
        *,
        report: Report | None = None,
        in_reply_to: str | None = None,
        auto_submitted: str = "auto-generated",
        auto_reply_to: str | None = None,
        attachments: Sequence[tuple[str, str, bytes]] = (),
        reply_side: Side = "staff",
        references: Sequence[str] | None = None,
    ) -> Outgoing | None:
        addressing = self.addressing
        message_id = addressing.message_id_for(key)
        message = compose(
            sender=addressing.sender,
            sender_name=self.sender_name,
            to=to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id,
            date=now,
            tracking_id=report.tracking_id if report else None,
            in_reply_to=in_reply_to,
            references=tuple(references) if references is not None else addressing.thread_of(report),
            reply_to=addressing.reply_address(report, reply_side) if report else addressing.sender,
            auto_submitted=auto_submitted,
            attachments=attachments,
            extra_headers={LOOP_HEADER: addressing.sender},
        )
        outgoing = Outgoing(key, kind, addressing.sender, to, message_id, message_bytes(message), report.id if report else None, auto_reply_to)
        return outgoing if enqueue(session, outgoing, now) else None

    def common_context(self, now: datetime) -> dict[str, Any]:
        return {"organisation": self.organisation, "policy_url": self.policy_url, "now": now.isoformat(timespec="minutes")}

    def rendered_or_alerted(self, session: Session, template: str, context: dict[str, Any], language: str | None, report: Report | None, now: datetime) -> RenderedMail | None:
        """The rendered mail, or None when the template fails on this data: an error line
        (the file and line, no report content) and one alert per template variant, durable
        as an outbox key, so the next failure of the same file is only logged."""
        try:
            return self.templates.render(template, context, language)
        except TemplateError as error:
            about = f" for {report.tracking_id}" if report else ""
            log.error("%s mail%s not sent: %s", template, about, error)
            self.template_failure_alert(session, template, language, str(error), report, now)
            return None

    def template_failure_alert(self, session: Session, template: str, language: str | None, error: str, report: Report | None, now: datetime) -> None:
        variant = self.failing_variant(template, language)
        key = f"template_failure:{variant.relative}:{variant.fingerprint}"
        to = recipient_addresses(self.alerts)
        if not to or key_exists(session, key):
            return
        self.enqueue_rendered(session, key, "template_failure", to, template_failure_mail(template, variant, error, report), now)

    def failing_variant(self, template: str, language: str | None) -> Variant:
        try:
            return self.templates.variant(template, language)
        except TemplateError:
            # The file itself is gone (removed while running): one alert for the name.
            return Variant(path=Path(f"{template}.txt.j2"), relative=f"{template}.txt.j2", fingerprint="missing")


def template_failure_mail(template: str, variant: Variant, error: str, report: Report | None) -> RenderedMail:
    """Written here, not from a template: this alert must go out when templates fail."""
    about = f" for {report.tracking_id}" if report else ""
    text = (
        f"A mail template failed while mailintake rendered it, so this mail was not sent:\n\n"
        f"  Mail:      {template.replace('_', ' ')}{about}\n"
        f"  Template:  {variant.path}\n"
        f"  Error:     {error}\n\n"
        "Every later mail that needs this template fails the same way until it is fixed; each\n"
        "failure is logged at ERROR, and this alert is not repeated for this version of the file.\n"
        "Fix the template ([templates] dir), then restart `mailintake serve`: it renders every\n"
        "template with a sample report at start and refuses to run with a broken one.\n"
        "Reports are stored and their deadlines keep running; a reporter whose acknowledgement\n"
        "was not sent has not heard from us (`mailintake sla status` shows what is due).\n\n"
        "For staff only: mailintake never sends this text to the reporter.\n"
    )
    return RenderedMail(subject=f"Mail template failed: {variant.relative}", text=text, html=None)
