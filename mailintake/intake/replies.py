"""Every SMTP/LMTP reply the listener sends, stated once.

Each reply carries its enhanced status code (RFC 3463), whose class matches the reply's
class: 2xx → 2.x.x, 4xx → 4.x.x, 5xx → 5.x.x. The 354 go-ahead and the EHLO keyword lines
carry none (RFC 2034). Replies aiosmtpd writes itself get their enhanced code from
`with_enhanced_code` on the way out.
"""

from __future__ import annotations

import re

SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
STORED = "250 2.0.0 Stored, sha256"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"

TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TOO_MANY_FROM_ADDRESS = "421 4.7.0 Too many connections from your address, try again later"
IDLE_TIMED_OUT = "421 4.4.2 Idle for too long, closing connection"
DATA_TIMED_OUT = "421 4.4.2 No message data for too long, closing connection"
STORAGE_UNAVAILABLE = "451 4.3.0 Storage temporarily unavailable, try again later"
INTERNAL_ERROR = "451 4.3.0 Internal error, try again later"
SHUTTING_DOWN = "451 4.3.2 Service shutting down, try again later"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"

LINE_TOO_LONG = "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)"
DATA_SYNTAX = "501 5.5.4 Syntax: DATA"
NEED_RECIPIENT = "503 5.5.1 Error: need RCPT command"
STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"
RECIPIENT_REJECTED = "550 5.1.1 Recipient address rejected: no such mailbox here"
MESSAGE_TOO_BIG = "552 5.3.4 Message too big for this system"
MESSAGE_SIZE_EXCEEDED = "552 5.3.4 Message size exceeds fixed maximum message size"

# EHLO keyword lines: the one this listener adds, and the prefix of the AUTH line it drops.
EHLO_ENHANCED_STATUS_CODES = "250-ENHANCEDSTATUSCODES"
EHLO_AUTH = "250-AUTH"

# aiosmtpd's own replies carry no enhanced status code (RFC 3463); these get one.
ENHANCED_BUILTIN_REPLIES = {
    "552 Error: message size exceeds fixed maximum message size": MESSAGE_SIZE_EXCEEDED,
}
# Other aiosmtpd errors get the enhanced code RFC 5248 lists for their basic code.
ENHANCED_CODE_FOR_ERROR = {
    "421": "4.3.2",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.3.1",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "550": "5.0.0",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.0.0",
    "555": "5.5.4",
}
ERROR_WITHOUT_ENHANCED_CODE = re.compile(r"^([45]\d\d) (?!\d\.\d{1,3}\.\d{1,3}\b)")


def stored_reply(sha256: str) -> str:
    return f"{STORED} {sha256[:16]}"


def with_enhanced_code(status: str) -> str:
    if status in ENHANCED_BUILTIN_REPLIES:
        return ENHANCED_BUILTIN_REPLIES[status]
    match = ERROR_WITHOUT_ENHANCED_CODE.match(status)
    if match is None:
        return status
    code = match.group(1)
    return f"{code} {ENHANCED_CODE_FOR_ERROR.get(code, code[0] + '.0.0')} {status[4:]}"
