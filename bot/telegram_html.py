"""Checking text an admin wrote against Telegram's HTML subset before anything is sent.

Telegram answers 400 "can't parse entities" to any other tag, an unbalanced tag or a bare '<';
a broadcast must be refused at preview time with the reason, never sent broken.
"""

from __future__ import annotations

import re

ALLOWED = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del",
    "span", "tg-spoiler", "a", "code", "pre", "blockquote", "tg-emoji",
}
_TOKEN = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[^<>]*)?)\s*>|<|&(#x?[0-9A-Fa-f]+|[A-Za-z]+);|&")
_KNOWN_ENTITIES = {"lt", "gt", "amp", "quot"}


def problem(text: str) -> str | None:
    """Why Telegram would refuse `text` as HTML, or None when it would take it."""
    stack: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token == "<":
            return "a '<' that starts no tag: write &lt; for a literal <"
        if token == "&":
            continue  # Telegram takes a lone & followed by no entity name as text
        if token.startswith("&"):
            name = match.group(4)
            if not name.startswith("#") and name not in _KNOWN_ENTITIES:
                return f"unknown entity {token}: write &amp; for a literal &"
            continue
        closing, name, attributes = match.group(1), match.group(2).lower(), match.group(3) or ""
        if name not in ALLOWED:
            return f"the tag <{name}> is not allowed; Telegram takes b, i, u, s, a href, code, pre, blockquote, tg-spoiler"
        if closing:
            if not stack or stack[-1] != name:
                expected = f"</{stack[-1]}>" if stack else "nothing"
                return f"</{name}> closes {expected} here"
            stack.pop()
            continue
        if name == "a" and not re.search(r"""href\s*=\s*["'][^"']+["']""", attributes):
            return "<a> needs an href, e.g. <a href=\"https://explorer.ooni.org\">OONI</a>"
        if name == "span" and "tg-spoiler" not in attributes:
            return '<span> is only allowed as <span class="tg-spoiler">'
        stack.append(name)
    if stack:
        return f"<{stack[-1]}> is never closed"
    return None



def escape_lone_ampersands(text: str) -> str:
    """`&` that starts no entity written as `&amp;`, as Telegram's HTML asks: what the admin typed then
    reaches every reader as the one correct rendering (tags, entities and links left as written)."""
    return _TOKEN.sub(lambda match: "&amp;" if match.group(0) == "&" else match.group(0), text)
