"""Signed, expiring inline buttons, pure: the callback data carries everything (no state kept), with an
expiry and a signature over it, the chat and the user — so a forged button, another person's, or
one from an old message is refused without touching anything (`rp:AZ:3:b:-:<expiry>:<signature>`).
The report form, the /watch form and the confirmations of /forgetme and /unwatch all use it."""

from __future__ import annotations

from bot.pseudonym import Pseudonyms


def sign(pseudonyms: Pseudonyms, prefix: str, chat_id: int, user_id: int, payload: str, expires: int) -> str:
    """A button's callback data: the payload, its expiry and a signature over both, the kind, the chat and the user."""
    expiry = _base36(expires)
    signature = pseudonyms.sign(f"{prefix}:{chat_id}:{user_id}:{payload}:{expiry}")
    return f"{prefix}:{payload}:{expiry}:{signature}"


def read(pseudonyms: Pseudonyms, prefix: str, chat_id: int, user_id: int, data: str | None, now: int) -> tuple[str, str]:
    """What a pressed button carries: ("ok", payload) | ("expired", "") | ("invalid", why)."""
    head, _, rest = (data or "").partition(":")
    parts = rest.rsplit(":", 2)
    if head != prefix or len(parts) != 3:
        return "invalid", "malformed"
    payload, expiry, signature = parts
    if not pseudonyms.verify(f"{prefix}:{chat_id}:{user_id}:{payload}:{expiry}", signature):
        return "invalid", "signature"  # forged, or another person's
    try:
        expires = int(expiry, 36)
    except ValueError:
        return "invalid", "malformed"
    if expires < now:
        return "expired", ""
    return "ok", payload


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out
