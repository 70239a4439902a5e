"""#attach: the files the staff member attached go to the reporter with the reply's text
(conversation/staff.py sends them); a forwarded mail, and what it carries, never does."""

from __future__ import annotations

from mailintake.conversation.commands.base import Command, CommandContext, changes_nothing, flag, no_conflicts, no_events

NAME = "attach"
USAGE = "#attach"
HELP = "send the files attached to this reply to the reporter (forwarded mails never are)"

conflicts = no_conflicts
apply = changes_nothing
events = no_events


def parse(argument: str, line: int) -> Command:
    return flag(NAME, argument, line)


def check(command: Command, context: CommandContext) -> list[str]:
    if context.reply.has("internal"):
        return ["#attach: an #internal note sends nothing to the reporter"]
    if not context.text and context.reply.command("status") is None:
        return ["#attach: write a few lines to go with the files; a reply of commands only sends the reporter nothing"]
    plan = context.file_plan()
    if not plan.files:
        return ["#attach: this reply has no file of your own attached (forwarded mails and what they carry are never passed on)"]
    if plan.left_out or plan.more:
        return [f"#attach: {', '.join(plan.left_out[:5]) or f'{plan.more} files'} would not fit in one mail ([staff] max_attachment_bytes, at most {plan.listed} files): send fewer or smaller files, or share them another way"]
    return []
