"""Hand a finished message to the configured relay with aiosmtplib and classify the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import aiosmtplib

from mailintake.config.schema import RelayConfig

Verdict = Literal["sent", "temporary", "permanent"]


@dataclass(frozen=True)
class RelayAnswer:
    verdict: Verdict
    reply: str
    reached: bool = True
    refused: tuple[str, ...] = ()


async def relay_message(config: RelayConfig, envelope_from: str, recipients: tuple[str, ...], content: bytes) -> RelayAnswer:
    try:
        refused, reply = await aiosmtplib.send(
            content,
            sender=envelope_from,
            recipients=list(recipients),
            hostname=config.host,
            port=config.port,
            use_tls=config.tls,
            start_tls=config.starttls,
            username=config.username or None,
            password=config.password or None,
            timeout=config.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as error:
        return answer_for_codes([(refusal.code, refusal.message) for refusal in error.recipients])
    except aiosmtplib.SMTPResponseException as error:
        return answer_for_codes([(error.code, error.message)])
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError, TimeoutError) as error:
        return RelayAnswer("temporary", f"relay unreachable ({type(error).__name__})", reached=False)
    except (aiosmtplib.SMTPException, UnicodeError, ValueError) as error:
        return RelayAnswer("temporary", f"relay conversation failed ({type(error).__name__})")
    if refused:
        # Accepted for the other recipients: sending again would duplicate their copy.
        text = "; ".join(f"{code} {message}" for code, message in refused.values())
        return RelayAnswer("sent", f"{reply}; refused: {text}", refused=tuple(refused))
    return RelayAnswer("sent", reply)


def answer_for_codes(replies: list[tuple[int, str]]) -> RelayAnswer:
    """Any 4xx means try again later (the relay may accept it then); only 5xx throughout is final."""
    text = "; ".join(f"{code} {message}" for code, message in replies)
    if any(400 <= code < 500 for code, _ in replies) or not replies:
        return RelayAnswer("temporary", text)
    return RelayAnswer("permanent", text)
