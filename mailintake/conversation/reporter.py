"""The reporter's replies: stored in the report's thread and forwarded to staff; a verified
one ends a wait on the reporter."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from mailintake.conversation.thread import ConversationServices, ThreadMail, end_pause, thread_message
from mailintake.deadlines.milestones import refresh_milestones
from mailintake.storage.models import Message

log = logging.getLogger(__name__)


def record_reporter_reply(session: Session, services: ConversationServices, mail: ThreadMail) -> Message:
    report = mail.report
    message = thread_message(mail, "reporter_reply")
    if mail.machine_mail is not None:
        message.kind = "automatic"
        log.info("report %s: machine mail from the reporter stored, not forwarded", report.tracking_id)
        return message
    # Only a reply through the signed address or a thread reference ends a wait: a subject
    # tag and a From line are no proof the reporter wrote it.
    resumed = mail.route.verified and end_pause(report, mail.now, "reporter reply")
    if resumed:
        refresh_milestones(session, report, services.policy, mail.calendar, mail.now)
    services.notices.reporter_reply_forwarded(session, report, message, resumed, mail.route.verified, mail.calendar, mail.now)
    log.info("report %s: reporter reply stored and forwarded to staff", report.tracking_id)
    return message
