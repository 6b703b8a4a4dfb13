"""`/watch` without arguments as buttons, and the share links of watches, pure.

The form keeps no state: each button carries the step and what is chosen so far, signed and
expiring (bot/buttons.py): `p:AZ:5` shows Azerbaijan's platforms with the chosen ones as a bitmask
(base 36), `d:AZ:5` adds them, `x` cancels. Deep links (`https://t.me/<bot>?start=watch_AZ_tiktok`)
carry `watch_<CC>[_<platform>…]`, at most 64 characters of A-Z a-z 0-9 _ - as Telegram allows.
"""

from __future__ import annotations

from bot import catalog

CALLBACK_PREFIX = "wf"
FORM_TTL = 600  # seconds a form's buttons stay valid after its last step
FORM_COUNTRIES = 12
CANCEL = "x"
DEEP_LINK_PREFIX = "watch_"
DEEP_LINK_LIMIT = 64  # Telegram's limit on a /start payload
_NAMES = tuple(catalog.PLATFORMS)


def mask_of(platforms) -> int:
    return sum(1 << _NAMES.index(name) for name in set(platforms))


def platforms_of(mask: int) -> tuple[str, ...]:
    return tuple(name for i, name in enumerate(_NAMES) if mask >> i & 1)


def step_payload(country: str, chosen, done: bool = False) -> str:
    return f"{'d' if done else 'p'}:{country}:{mask_of(chosen):x}"


def read_payload(payload: str) -> tuple[str, catalog.Country, tuple[str, ...]] | None:
    """("platforms" | "done", country, chosen platforms) for a payload the form could have made, else None."""
    parts = payload.split(":")
    if len(parts) != 3 or parts[0] not in ("p", "d"):
        return None
    country = catalog.find_country(parts[1]) if len(parts[1]) == 2 and parts[1].isupper() else None
    try:
        mask = int(parts[2], 16)
    except ValueError:
        return None
    if country is None or mask >> len(_NAMES):
        return None
    return ("done" if parts[0] == "d" else "platforms"), country, platforms_of(mask)


def form_countries(chat_countries: list[str], most_watched: list[str], known: list[str]) -> list[catalog.Country]:
    """The chat's own countries first, then the most watched ones, then those whose networks we know."""
    codes = list(dict.fromkeys([*chat_countries, *most_watched, *known]))
    found = [catalog.find_country(code) for code in codes]
    return [country for country in found if country is not None][:FORM_COUNTRIES]


def deep_link_payload(country: str, platforms, all_platforms: bool) -> str:
    """`watch_AZ_tiktok_whatsapp`; the country alone for every platform (or when the names would not fit)."""
    payload = DEEP_LINK_PREFIX + country
    if all_platforms:
        return payload
    full = "_".join([payload, *platforms])
    return full if len(full) <= DEEP_LINK_LIMIT else payload


def share_link(bot_username: str, payload: str) -> str:
    return f"https://t.me/{bot_username}?start={payload}"


def read_deep_link(payload: str) -> list[str] | None:
    """`watch_AZ_tiktok` → the words of `/watch AZ tiktok`; None when the payload is not a watch link."""
    if not payload.startswith(DEEP_LINK_PREFIX) or len(payload) > DEEP_LINK_LIMIT:
        return None
    words = payload[len(DEEP_LINK_PREFIX):].split("_")
    return words if words and words[0] else None
