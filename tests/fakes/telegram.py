"""A fake Telegram Bot API server for end-to-end tests.

`FakeTelegram` is an aiohttp server on 127.0.0.1 that speaks enough of the Bot API for the real
python-telegram-bot 22 stack (polling, handlers, error mapping) and our own HTTP code to run
against it unchanged:

    async with FakeTelegram(token="123:ABC") as fake:
        app = application_builder(fake).build()        # or: blockwatch run with TELEGRAM_API_URL=fake.url
        app.add_handler(CommandHandler("start", start))
        async with polling(app):
            fake.send_text(42, 42, "/start")            # what a user types
            [reply] = await fake.wait_sent(42)          # what the bot answered
            assert "watch" in reply.text

What it does, as Telegram does it:
- routes `GET|POST {url}/bot{token}/{method}` (method names are case-insensitive); reads
  form-encoded (what PTB sends, non-string values `json.dumps`-ed), multipart and JSON bodies;
  answers `{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description", "parameters"}`;
- long-polls `getUpdates` (offset confirms, `timeout` waits, an injected update wakes it at once,
  a second poller gets 409 Conflict);
- checks what the bot sends: Telegram's HTML subset (`parse_html`), 4096 UTF-16 units of visible
  text, empty text, inline keyboards (callback_data <= 64 bytes), editing unknown or unchanged
  messages, answering unknown callback queries;
- remembers chats, members, the bot's messages (with edits and deletions) and its commands;
- injects faults: a failing chat (403), the next n sends answered 429, a throughput limit,
  a migrated group, slow answers;
- records every call as a `Call`, and lets a test await calls without sleeping;
- webhooks: remembers what setWebhook registered (`webhook`) and POSTs a pending update to that
  URL with or without the secret token header (`post_webhook`); getUpdates answers 409 meanwhile.

Deliberate choices: an unknown named HTML entity such as `&foo;` is rejected (real Telegram shows
it literally; rejecting it catches text we forgot to escape — pass `strict_entities=False` for
Telegram's behaviour). Markdown parse modes are accepted unchecked. Chats the fake has not seen are
created on first use (positive id: private, -100...: supergroup, other negative: group).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

BOT_USERNAME = "blockwatch_test_bot"
BOT_FIRST_NAME = "Blockwatch Test"
MAX_TEXT_UTF16 = 4096
MAX_CAPTION_UTF16 = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_INLINE_BUTTONS = 100

# Methods that put or change a message in a chat: what rate limits and blocked chats apply to.
SEND_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "sendSticker", "sendAnimation", "sendVideo",
    "sendAudio", "sendVoice", "sendLocation", "sendPoll", "sendMediaGroup", "copyMessage",
    "forwardMessage", "editMessageText", "editMessageReplyMarkup", "editMessageCaption",
})
CHAT_WRITE_METHODS = SEND_METHODS | {
    "sendChatAction", "deleteMessage", "deleteMessages", "pinChatMessage", "unpinChatMessage",
}
# Update kinds Telegram leaves out unless a poller asks for them in allowed_updates.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})
# Parameters that are strings in the Bot API and must not be JSON-decoded ("123" stays "123").
STRING_PARAMS = frozenset({
    "text", "caption", "parse_mode", "callback_query_id", "url", "action", "language_code",
    "inline_message_id", "business_connection_id", "message_effect_id", "secret_token", "emoji",
    "title", "description", "short_description", "name", "question", "address", "first_name",
    "last_name", "phone_number", "vcard", "explanation", "data", "query", "custom_title",
    "invite_link", "sticker", "photo", "document", "video", "audio", "voice", "animation",
    "thumbnail", "file_id", "ip_address",
})
ADMIN_RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
    "can_edit_stories", "can_delete_stories", "can_pin_messages", "can_manage_topics",
)
RESTRICTED_RIGHTS = (
    "can_send_messages", "can_send_audios", "can_send_documents", "can_send_photos",
    "can_send_videos", "can_send_video_notes", "can_send_voice_notes", "can_send_polls",
    "can_send_other_messages", "can_add_web_page_previews", "can_change_info",
    "can_invite_users", "can_pin_messages", "can_manage_topics", "can_edit_tag",
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request (sendPhoto, sendDocument...)."""

    filename: str | None
    content_type: str | None
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Call:
    """One API call the fake answered: decoded parameters, when, and the HTTP status it gave."""

    method: str
    params: dict[str, Any]
    time: float
    status: int
    response: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def chat_id(self) -> Any:
        return self.params.get("chat_id")

    @property
    def text(self) -> str | None:
        return self.params.get("text")

    @property
    def result(self) -> Any:
        return self.response.get("result")

    @property
    def description(self) -> str | None:
        return self.response.get("description")


class ApiError(Exception):
    """An error answer, as Telegram words it (status, description, optional parameters)."""

    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(description: str, parameters: dict | None = None) -> ApiError:
    return ApiError(400, f"Bad Request: {description}", parameters)


# --------------------------------------------------------------------------------------------
# Telegram's HTML subset (follows tdlib's parser: same tags, same errors, UTF-16 offsets)


class HTMLParseError(ValueError):
    """The text is not valid Telegram HTML; the message is what follows "can't parse entities: "."""


_TAG_ENTITY = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler", "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPACE = " \t\r\n\f\v"


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _decode_entity(html: str, pos: int) -> tuple[str | None, int]:
    """Decode the HTML entity at html[pos] == '&' as tdlib does; (None, pos) if it is none."""
    end = pos + 1
    if html.startswith("#", end):
        end += 1
        hexa = html.startswith(("x", "X"), end)
        end += hexa
        digits = "0123456789abcdefABCDEF" if hexa else "0123456789"
        start = end
        while end < len(html) and html[end] in digits:
            end += 1
        if end == start or end - pos >= 10:
            return None, pos
        code = int(html[start:end], 16 if hexa else 10)
        if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None, pos
        char = chr(code)
    else:
        while end < len(html) and html[end].isascii() and html[end].isalpha():
            end += 1
        char = _NAMED_ENTITIES.get(html[pos + 1:end])
        if char is None:
            return None, pos
    if html.startswith(";", end):
        end += 1
    return char, end


def parse_html(html: str, *, strict_entities: bool = True) -> tuple[str, list[dict]]:
    """Parse Telegram HTML into (visible text, MessageEntity dicts with UTF-16 offsets).

    Raises HTMLParseError on what Telegram rejects: unsupported tags, unbalanced tags, a bare
    '<', `<span>` without class="tg-spoiler", `<tg-emoji>` without a numeric emoji-id — and, if
    strict_entities, named entities other than &lt; &gt; &amp; &quot;.
    """
    out: list[str] = []
    utf16 = 0
    open_tags: list[tuple[str, str, bool, int]] = []  # name, argument, expandable, start offset
    entities: list[dict] = []
    i, n = 0, len(html)

    def at(pos: int) -> int:  # tdlib reports byte offsets into the UTF-8 text
        return len(html[:pos].encode("utf-8"))

    while i < n:
        char = html[i]
        if char == "&":
            decoded, end = _decode_entity(html, i)
            if decoded is not None:
                out.append(decoded)
                utf16 += utf16_len(decoded)
                i = end
                continue
            unknown = re.match(r"&([A-Za-z][A-Za-z0-9]*);", html[i:])
            if strict_entities and unknown:
                raise HTMLParseError(f'Unknown entity "{unknown.group(0)}" at byte offset {at(i)}')
        if char != "<":
            out.append(char)
            utf16 += utf16_len(char)
            i += 1
            continue

        begin = i
        i += 1
        if i < n and html[i] == "/":
            if not open_tags:
                raise HTMLParseError(f"Unexpected end tag at byte offset {at(begin)}")
            j = i + 1
            while j < n and html[j] not in _SPACE and html[j] != ">":
                j += 1
            end_name = html[i + 1:j].lower()
            while j < n and html[j] in _SPACE:
                j += 1
            if j >= n or html[j] != ">":
                raise HTMLParseError(f"Unclosed end tag at byte offset {at(begin)}")
            name, argument, expandable, start = open_tags.pop()
            if end_name and end_name != name:
                raise HTMLParseError(
                    f'Unmatched end tag at byte offset {at(begin)}, expected "</{name}>", '
                    f'found "</{end_name}>"'
                )
            i = j + 1
            if utf16 > start:
                _close_entity(entities, name, argument, expandable, start, utf16 - start)
            continue

        j = i
        while j < n and html[j] not in _SPACE and html[j] != ">":
            j += 1
        if j >= n:
            raise HTMLParseError(f"Unclosed start tag at byte offset {at(begin)}")
        name = html[i:j].lower()
        if name not in _TAG_ENTITY:
            raise HTMLParseError(f'Unsupported start tag "{name}" at byte offset {at(begin)}')
        argument, expandable, i = _parse_attributes(html, j, name, at(begin))
        if name == "span" and argument != "spoiler":
            raise HTMLParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {at(begin)}')
        if name == "tg-emoji" and not argument.isdigit():
            raise HTMLParseError("Invalid custom emoji identifier specified")
        open_tags.append((name, argument, expandable, utf16))

    if open_tags:
        raise HTMLParseError(f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)  # only pre entities carry a language
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _parse_attributes(html: str, i: int, tag: str, begin_at: int) -> tuple[str, bool, int]:
    """Read a start tag's attributes from html[i:]; returns (argument, expandable, index after '>')."""
    n = len(html)
    argument, expandable = "", False
    while True:
        while i < n and html[i] in _SPACE:
            i += 1
        if i >= n:
            raise HTMLParseError(f"Unclosed start tag at byte offset {begin_at}")
        if html[i] == ">":
            return argument, expandable, i + 1
        name_start = i
        while i < n and html[i] not in _SPACE and html[i] not in "=>":
            i += 1
        attribute = html[name_start:i].lower()
        while i < n and html[i] in _SPACE:
            i += 1
        if i >= n or html[i] != "=":
            if tag == "blockquote" and attribute == "expandable":
                expandable = True
                continue
            raise HTMLParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" at byte '
                f"offset {begin_at}"
            )
        i += 1
        while i < n and html[i] in _SPACE:
            i += 1
        if i >= n:
            raise HTMLParseError(f"Unclosed start tag at byte offset {begin_at}")
        if html[i] in "'\"":
            quote = html[i]
            i += 1
            value: list[str] = []
            while i < n and html[i] != quote:
                decoded, end = _decode_entity(html, i) if html[i] == "&" else (None, i)
                if decoded is not None:
                    value.append(decoded)
                    i = end
                else:
                    value.append(html[i])
                    i += 1
            i += 1  # past the closing quote
            text_value = "".join(value)
        else:
            token_start = i
            while i < n and (html[i].isalnum() or html[i] in ".-"):
                i += 1
            text_value = html[token_start:i].lower()
            if i >= n or (html[i] not in _SPACE and html[i] != ">"):
                raise HTMLParseError(f"Unexpected end of name token at byte offset {begin_at}")
        if tag == "a" and attribute == "href":
            argument = text_value
        elif tag == "code" and attribute == "class" and text_value.startswith("language-"):
            argument = text_value[len("language-"):]
        elif tag == "span" and attribute == "class" and text_value.startswith("tg-"):
            argument = text_value[len("tg-"):]
        elif tag == "tg-emoji" and attribute == "emoji-id":
            argument = text_value


def _close_entity(entities: list[dict], tag: str, argument: str, expandable: bool,
                  offset: int, length: int) -> None:
    kind = _TAG_ENTITY[tag]
    entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
    if tag == "a":
        if not argument:
            return  # an <a> without href is plain text
        entity["url"] = argument
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = argument
    elif tag == "blockquote" and expandable:
        entity["type"] = "expandable_blockquote"
    elif tag == "code" and argument:
        entity["language"] = argument  # kept only if a <pre> takes it; dropped in parse_html
    elif tag == "pre":
        # <pre><code class="language-x">…</code></pre> is one pre entity with a language
        inner = entities[-1] if entities else None
        if inner and inner["type"] == "code" and (inner["offset"], inner["length"]) == (offset, length):
            entities.pop()
            if "language" in inner:
                entity["language"] = inner["language"]
    entities.append(entity)


def _trim(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """Strip leading/trailing whitespace as Telegram does, moving and clipping the entities."""
    stripped = text.strip()
    if not stripped:
        return "", []
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    end = lead + utf16_len(stripped)
    kept = []
    for entity in entities:
        start, stop = max(entity["offset"], lead), min(entity["offset"] + entity["length"], end)
        if stop > start:
            kept.append({**entity, "offset": start - lead, "length": stop - start})
    return stripped, kept


def command_entities(text: str) -> list[dict]:
    """The bot_command entities a Telegram client marks in a user's text (PTB needs offset 0)."""
    entities = []
    for match in re.finditer(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@/])", text):
        entities.append({
            "type": "bot_command",
            "offset": utf16_len(text[: match.start()]),
            "length": utf16_len(match.group(0)),
        })
    return entities


# --------------------------------------------------------------------------------------------
# Request decoding


def decode_param(name: str, value: Any) -> Any:
    """A parameter as Telegram reads it: string fields stay strings, others are JSON-decoded."""
    if not isinstance(value, str) or name in STRING_PARAMS:
        return value
    try:
        return json.loads(value, parse_constant=_reject_constant)
    except ValueError:
        return value


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


async def read_params(request: web.Request) -> dict[str, Any]:
    """Query string plus a form, multipart or JSON body, decoded into Python values."""
    raw: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                raw.update(body)
        else:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    raw[key] = UploadedFile(value.filename, value.content_type, value.file.read())
                else:
                    raw[key] = value
    return {key: decode_param(key, value) for key, value in raw.items()}


# --------------------------------------------------------------------------------------------
# The server


class _Pulse:
    """Wakes every coroutine waiting on it; waiting never misses a fire made after the check."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), max(timeout, 0))


_METHODS: dict[str, str] = {}  # lower-case name -> handler attribute


def _api(name: str) -> Callable:
    def register(function: Callable) -> Callable:
        _METHODS[name.lower()] = function.__name__
        function.api_name = name
        return function
    return register


class FakeTelegram:
    """A Bot API server on 127.0.0.1 for one bot token. Use as `async with FakeTelegram() as fake`."""

    def __init__(self, token: str = "123:ABC", *, username: str = BOT_USERNAME,
                 strict_entities: bool = True, port: int = 0) -> None:
        self.token = token
        self.port = port  # 0: any free port
        self.strict_entities = strict_entities
        head = token.split(":", 1)[0]
        self.bot_id = int(head) if head.isdigit() else 123
        self.bot_user = {
            "id": self.bot_id, "is_bot": True, "first_name": BOT_FIRST_NAME, "username": username,
        }
        self.url = ""  # http://127.0.0.1:PORT once started
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._calls: list[Call] = []
        self._call_pulse = _Pulse()
        # What Telegram remembers about the world: kept by clear(), reset by a new fake.
        self._chats: dict[int, dict] = {}
        self._members: dict[tuple[int, int], str] = {}
        self._messages: dict[tuple[int, int], dict] = {}
        self._next_message_id: dict[int, int] = {}
        self._commands: dict[tuple[str, str], list[dict]] = {}
        self._profile: dict[str, str] = {}
        self._updates: list[dict] = []
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._open_queries: set[str] = set()
        self._allowed_updates: set[str] | None = None
        self._poll_generation = 0
        self._webhook_url = ""
        self._webhook: dict[str, Any] = {}  # what the last setWebhook asked for (url, secret_token, allowed_updates)
        self._update_pulse = _Pulse()
        # Faults
        self._failing: dict[int, tuple[int, str, frozenset[str], bool]] = {}
        self._migrated: dict[int, int] = {}
        self._limited_left = 0
        self._limited_retry_after = 1
        self._limited_methods: frozenset[str] = SEND_METHODS
        self._rate: tuple[int | None, int | None] = (None, None)
        self._sent_times: deque[float] = deque()
        self._chat_sent_times: dict[int, deque[float]] = {}
        self._delay = 0.0
        self._delay_methods: frozenset[str] | None = None
        self._answer_delay = 0.0  # sending's faults: see delay_answers
        self._answer_delay_methods: frozenset[str] = SEND_METHODS

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> FakeTelegram:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/file/bot{token}/{path:.*}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        self._closing = True
        self._update_pulse.fire()  # long polls answer [] at once instead of holding shutdown
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """Where `{method}` goes: f"{fake.api_url}/sendMessage"."""
        return f"{self.url}/bot{self.token}"

    # -- recording ---------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget the recorded calls (the world — chats, messages, updates — stays)."""
        self._calls.clear()

    def calls(self, method: str | None = None) -> list[Call]:
        """Every call so far, oldest first; only those of `method` if given."""
        return [c for c in self._calls if method is None or c.method == method]

    def sent(self, chat_id: int | str | None = None) -> list[Call]:
        """Successful sendMessage/editMessageText calls (to `chat_id` if given)."""
        return [c for c in self._calls if _is_sent(c, chat_id)]

    async def wait_for(self, what: str | Callable[[Call], bool] | None = None, *, count: int = 1,
                       timeout: float = 5.0, **params: Any) -> list[Call]:
        """Wait until `count` calls match; returns them all. Raises AssertionError on timeout.

        `what` is a method name or a predicate on Call; keyword arguments must equal the call's
        params (`chat_id=42` also matches "42"). Example: `await fake.wait_for("sendMessage", chat_id=42)`.
        """
        def matches(call: Call) -> bool:
            if isinstance(what, str) and call.method != what:
                return False
            if callable(what) and not what(call):
                return False
            return all(_same(call.params.get(k), v) for k, v in params.items())

        return await self._wait(matches, count, timeout, _describe(what, params))

    async def wait_sent(self, chat_id: int | str | None = None, *, count: int = 1,
                        timeout: float = 5.0) -> list[Call]:
        """Wait until `count` messages were sent or edited successfully (to `chat_id` if given)."""
        return await self._wait(lambda c: _is_sent(c, chat_id), count, timeout,
                                f"successful sends to chat {chat_id}")

    async def _wait(self, matches: Callable[[Call], bool], count: int, timeout: float,
                    description: str) -> list[Call]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = [c for c in self._calls if matches(c)]
            remaining = deadline - asyncio.get_running_loop().time()
            if len(found) >= count or remaining <= 0:
                break
            await self._call_pulse.wait(remaining)
        if len(found) < count:
            recent = "\n".join(
                f"  {c.method} {c.status} {_short(c.params)}" for c in self._calls[-15:]
                if c.method != "getUpdates"
            )
            raise AssertionError(
                f"timed out after {timeout}s waiting for {count} x {description}; found "
                f"{len(found)}. Last calls (getUpdates left out):\n{recent or '  none'}"
            )
        return found

    def _record(self, call: Call) -> None:
        self._calls.append(call)
        self._call_pulse.fire()

    # -- the world ---------------------------------------------------------------------------

    def add_chat(self, chat_id: int, chat_type: str | None = None, *, title: str | None = None,
                 username: str | None = None, first_name: str | None = None) -> dict:
        """Make a chat known (or update it); returns its Chat object."""
        chat = self._chats.get(chat_id)
        if chat is None or (chat_type and chat["type"] != chat_type):
            kind = chat_type or _infer_chat_type(chat_id)
            chat = {"id": chat_id, "type": kind}
            if kind == "private":
                chat["first_name"] = first_name or f"User{chat_id}"
            else:
                chat["title"] = title or {"channel": "Test channel"}.get(kind, "Test group")
            self._chats[chat_id] = chat
        if title and chat["type"] != "private":
            chat["title"] = title
        if first_name and chat["type"] == "private":
            chat["first_name"] = first_name
        if username:
            chat["username"] = username
        return chat

    def set_chat_admins(self, chat_id: int, user_ids: Iterable[int], *,
                        creator: int | None = None) -> None:
        """Make `user_ids` the chat's administrators ("creator" for `creator`), others members."""
        for key in [k for k, status in self._members.items()
                    if k[0] == chat_id and status in ("creator", "administrator")]:
            del self._members[key]
        for user_id in user_ids:
            self._members[(chat_id, user_id)] = "administrator"
        if creator is not None:
            self._members[(chat_id, creator)] = "creator"

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """Any ChatMember status: creator, administrator, member, restricted, left, kicked."""
        self._members[(chat_id, user_id)] = status

    def message(self, chat_id: int, message_id: int) -> dict | None:
        """The current state of a message (after edits), None if unknown or deleted."""
        return self._messages.get((chat_id, message_id))

    def messages(self, chat_id: int) -> list[dict]:
        """Every message still in the chat (users' and the bot's), oldest first, as it looks now."""
        return [m for (c, _), m in sorted(self._messages.items()) if c == chat_id]

    def bot_messages(self, chat_id: int) -> list[dict]:
        """The bot's messages still in the chat, oldest first, as they look now."""
        return [m for m in self.messages(chat_id) if m.get("from", {}).get("id") == self.bot_id]

    def my_commands(self, scope: dict | None = None, language_code: str = "") -> list[dict]:
        """What setMyCommands stored for that scope and language."""
        return self._commands.get((_scope_key(scope), language_code), [])

    # -- fault injection ---------------------------------------------------------------------

    def fail_chat(self, chat_id: int, status: int = 403,
                  description: str = "Forbidden: bot was blocked by the user", *,
                  methods: Iterable[str] | None = None) -> None:
        """Answer every write to `chat_id` with this error until clear_failures()."""
        chosen = frozenset(methods) if methods is not None else CHAT_WRITE_METHODS
        self._failing[chat_id] = (status, description, chosen, False)

    def clear_failures(self, chat_id: int | None = None) -> None:
        """Stop failing one chat (or all chats); also ends migrations."""
        if chat_id is None:
            self._failing.clear()
            self._migrated.clear()
        else:
            self._failing.pop(chat_id, None)
            self._migrated.pop(chat_id, None)

    def rate_limit_next(self, n: int, retry_after: int = 1, *,
                        methods: Iterable[str] | None = None) -> None:
        """Answer the next `n` sends 429 Too Many Requests with parameters.retry_after."""
        self._limited_left = n
        self._limited_retry_after = retry_after
        self._limited_methods = frozenset(methods) if methods is not None else SEND_METHODS

    def limit_rate(self, per_second: int | None = 30, *, per_chat: int | None = None) -> None:
        """Answer 429 (retry_after=1) to sends beyond `per_second` overall, or `per_chat` to one
        chat, within any sliding second. `limit_rate(None)` turns it off."""
        self._rate = (per_second, per_chat)
        self._sent_times.clear()
        self._chat_sent_times.clear()

    def migrate_chat(self, old_id: int, new_id: int, *, announce: bool = False) -> None:
        """The group `old_id` became supergroup `new_id`: calls to the old id answer 400 with
        parameters.migrate_to_chat_id. With announce, the service messages arrive as updates."""
        old = self.add_chat(old_id)
        self._migrated[old_id] = new_id
        self.add_chat(new_id, "supergroup", title=old.get("title"))
        if announce:
            self._inject("message", self._new_message(old_id, None, migrate_to_chat_id=new_id))
            self._inject("message", self._new_message(new_id, None, migrate_from_chat_id=old_id))

    def delay(self, seconds: float, *, methods: Iterable[str] | None = None) -> None:
        """Hold every answer (but getUpdates', unless named) `seconds` before handling it.
        The call still takes effect after the wait, even if the client gave up. 0 turns it off."""
        self._delay = seconds
        self._delay_methods = frozenset(methods) if methods is not None else None

    # -- sending's faults: answers that come late ---------------------------------------------

    def delay_answers(self, seconds: float, *, methods: Iterable[str] | None = None) -> None:
        """Apply each send at once (the message is in the chat, the call recorded) but answer it
        `seconds` later, as Telegram does under load; a client that gave up meanwhile never learns
        that it arrived. 0 turns it off."""
        self._answer_delay = seconds
        self._answer_delay_methods = frozenset(methods) if methods is not None else SEND_METHODS

    async def _answer_late(self, method: str) -> None:
        if self._answer_delay > 0 and method in self._answer_delay_methods:
            with contextlib.suppress(asyncio.CancelledError):  # the client hung up: it was applied all the same
                await asyncio.sleep(self._answer_delay)

    # -- what users do -----------------------------------------------------------------------

    def send_text(self, chat_id: int, user_id: int, text: str, chat_type: str | None = None, *,
                  username: str | None = None, first_name: str = "Tester",
                  language_code: str | None = "en", chat_title: str | None = None,
                  reply_to_message_id: int | None = None) -> int:
        """A user writes `text` (commands get their bot_command entity). Returns the update_id."""
        sender = self._user(user_id, username, first_name, language_code)
        self._chat_for(chat_id, chat_type, chat_title, sender)
        content: dict[str, Any] = {"text": text}
        if entities := command_entities(text):
            content["entities"] = entities
        if reply_to_message_id is not None:
            replied = self._messages.get((chat_id, reply_to_message_id))
            if replied is None:
                raise KeyError(f"no message {reply_to_message_id} in chat {chat_id} to reply to")
            content["reply_to_message"] = replied
        return self._inject("message", self._new_message(chat_id, sender, **content))

    def edit_text(self, chat_id: int, user_id: int, message_id: int, text: str,
                  chat_type: str | None = None, **user: Any) -> int:
        """A user edits their message `message_id` to `text` (an edited_message update)."""
        sender = self._user(user_id, user.get("username"), user.get("first_name", "Tester"),
                            user.get("language_code", "en"))
        chat = self._chat_for(chat_id, chat_type, user.get("chat_title"), sender)
        original = self._messages.get((chat_id, message_id), {})
        message: dict[str, Any] = {
            "message_id": message_id, "from": sender, "chat": dict(chat),
            "date": original.get("date", _now()), "edit_date": _now(), "text": text,
        }
        if entities := command_entities(text):
            message["entities"] = entities
        self._messages[(chat_id, message_id)] = message
        return self._inject("edited_message", message)

    def send_sticker(self, chat_id: int, user_id: int, emoji: str = "👍",
                     chat_type: str | None = None, **user: Any) -> int:
        """A user sends a sticker (a message without text)."""
        sender = self._user(user_id, user.get("username"), user.get("first_name", "Tester"),
                            user.get("language_code", "en"))
        self._chat_for(chat_id, chat_type, user.get("chat_title"), sender)
        sticker = {
            "file_id": f"sticker-{next(self._query_ids)}", "file_unique_id": "AgADsticker",
            "type": "regular", "width": 512, "height": 512, "is_animated": False,
            "is_video": False, "emoji": emoji,
        }
        return self._inject("message", self._new_message(chat_id, sender, sticker=sticker))

    def send_photo(self, chat_id: int, user_id: int, caption: str | None = None,
                   chat_type: str | None = None, **user: Any) -> int:
        """A user sends a photo, with an optional caption."""
        sender = self._user(user_id, user.get("username"), user.get("first_name", "Tester"),
                            user.get("language_code", "en"))
        self._chat_for(chat_id, chat_type, user.get("chat_title"), sender)
        content: dict[str, Any] = {"photo": _photo_sizes(f"photo-{next(self._query_ids)}")}
        if caption is not None:
            content["caption"] = caption
            if entities := command_entities(caption):  # marked, but PTB runs commands from text only
                content["caption_entities"] = entities
        return self._inject("message", self._new_message(chat_id, sender, **content))

    def channel_post(self, chat_id: int, text: str, *, chat_title: str = "Test channel") -> int:
        """A post in a channel the bot is in (no `from`; sender_chat is the channel)."""
        chat = self.add_chat(chat_id, "channel", title=chat_title)
        content: dict[str, Any] = {"text": text, "sender_chat": dict(chat)}
        if entities := command_entities(text):
            content["entities"] = entities
        return self._inject("channel_post", self._new_message(chat_id, None, **content))

    def press_button(self, chat_id: int, user_id: int, message_id: int, data: str, *,
                     forged: bool = False, username: str | None = None,
                     first_name: str = "Tester", language_code: str | None = "en") -> int:
        """A user presses the inline button carrying `data` under the bot's message.

        The button must be on the message as it is now, unless `forged` (a client sending
        callback data the bot never offered)."""
        message = self._messages.get((chat_id, message_id))
        if message is None:
            raise KeyError(f"the bot has no message {message_id} in chat {chat_id}")
        offered = [b.get("callback_data") for row in
                   message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]
        if not forged and data not in offered:
            raise KeyError(f"message {message_id} in chat {chat_id} has no button {data!r}; "
                           f"it offers {offered} (pass forged=True to send it anyway)")
        query_id = str(next(self._query_ids) + 10**12)
        self._open_queries.add(query_id)
        query = {
            "id": query_id,
            "from": self._user(user_id, username, first_name, language_code),
            "chat_instance": str(abs(chat_id) * 7 + 1000003),
            "message": message,
            "data": data,
        }
        return self._inject("callback_query", query)

    def chat_member_update(self, chat_id: int, user_id: int, old_status: str, new_status: str,
                           chat_type: str | None = None, *, username: str | None = None,
                           first_name: str = "Tester", chat_title: str | None = None) -> int:
        """The bot's membership changes (a my_chat_member update), by `user_id`'s doing.

        As on Telegram, sends to the chat then fail while the bot is kicked/left (403) and work
        again once it is a member: private "kicked" is the user blocking the bot."""
        sender = self._user(user_id, username, first_name, "en")
        chat = self._chat_for(chat_id, chat_type, chat_title, sender)
        self._members[(chat_id, self.bot_id)] = new_status
        if new_status in ("kicked", "left"):
            self._failing[chat_id] = (403, _gone_description(chat["type"], new_status),
                                      CHAT_WRITE_METHODS, True)
        elif self._failing.get(chat_id, (0, "", frozenset(), False))[3]:
            del self._failing[chat_id]
        update = {
            "chat": dict(chat), "from": sender, "date": _now(),
            "old_chat_member": _member(self._bot_ref(), old_status),
            "new_chat_member": _member(self._bot_ref(), new_status),
        }
        return self._inject("my_chat_member", update)

    def inject(self, update: dict) -> int:
        """Queue a raw update (any kind); its update_id is filled in and returned."""
        kind = next(k for k in update if k != "update_id")
        return self._inject(kind, update[kind])

    def pending_updates(self) -> list[dict]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    # -- helpers for the world ---------------------------------------------------------------

    def _inject(self, kind: str, payload: dict) -> int:
        update_id = next(self._update_ids)
        # a copy: later edits of a stored message must not change an update already queued
        self._updates.append({"update_id": update_id, kind: copy.deepcopy(payload)})
        self._update_pulse.fire()
        return update_id

    def _user(self, user_id: int, username: str | None, first_name: str,
              language_code: str | None) -> dict:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        return user

    def _bot_ref(self) -> dict:
        return dict(self.bot_user)

    def _chat_for(self, chat_id: int, chat_type: str | None, title: str | None,
                  sender: dict) -> dict:
        kind = chat_type or (self._chats[chat_id]["type"] if chat_id in self._chats else None)
        if (kind or _infer_chat_type(chat_id)) == "private":
            return self.add_chat(chat_id, "private", first_name=sender["first_name"],
                                 username=sender.get("username"))
        return self.add_chat(chat_id, kind, title=title)

    def _new_message(self, chat_id: int, sender: dict | None, **content: Any) -> dict:
        chat = self.add_chat(chat_id)
        message_id = self._next_message_id.get(chat_id, 0) + 1
        self._next_message_id[chat_id] = message_id
        message: dict[str, Any] = {"message_id": message_id}
        if sender is not None:
            message["from"] = sender
        message.update({"chat": dict(chat), "date": _now()})
        message.update(content)
        self._messages[(chat_id, message_id)] = message
        return message

    # -- webhook: Telegram POSTing updates to the URL a bot set -----------------------------

    @property
    def webhook(self) -> dict[str, Any]:
        """What the last setWebhook registered (url, secret_token, allowed_updates); {} when none is set."""
        return dict(self._webhook)

    async def post_webhook(self, update: dict | None = None, *, secret_token: str | None | bool = True) -> int:
        """POST an update to the registered webhook URL and return the HTTP status. Without `update`:
        the oldest pending one the webhook wants, as Telegram does, which leaves the queue only when
        answered 2xx; with `update`: that dict as given (a forged request), the queue untouched.
        `secret_token`: True sends the registered one in X-Telegram-Bot-Api-Secret-Token, None no
        header, a string that string."""
        if not self._webhook:
            raise AssertionError("no webhook is set")
        queued = update is None
        if queued:
            allowed = self._webhook.get("allowed_updates")

            def deliverable(pending: dict) -> bool:
                kind = next(k for k in pending if k != "update_id")
                return kind in allowed if allowed else kind not in OPT_IN_UPDATES

            update = next((u for u in self._updates if deliverable(u)), None)
            if update is None:
                raise AssertionError("no pending update to deliver")
        token = self._webhook.get("secret_token") if secret_token is True else secret_token
        headers = {"X-Telegram-Bot-Api-Secret-Token": token} if token is not None else {}
        async with aiohttp.ClientSession() as session:
            async with session.post(self._webhook["url"], json=update, headers=headers) as response:
                status = response.status
        if queued and 200 <= status < 300:
            self._updates.remove(update)
        return status

    # -- HTTP --------------------------------------------------------------------------------

    async def _file(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"},
                                 status=404)

    async def _handle(self, request: web.Request) -> web.Response:
        given = request.match_info["method"]
        attribute = _METHODS.get(given.lower())
        method = getattr(getattr(self, attribute), "api_name") if attribute else given
        try:
            params = await read_params(request)
        except ValueError:
            params = {}
            error: ApiError | None = bad_request("can't parse JSON")
        else:
            error = None
        if error is None and request.match_info["token"] != self.token:
            error = ApiError(401, "Unauthorized")
        if error is None and attribute is None:
            error = ApiError(404, "Not Found: method not found")
        if error is None:
            if self._delay > 0 and (method in self._delay_methods if self._delay_methods
                                    is not None else method != "getUpdates"):
                await asyncio.sleep(self._delay)
            try:
                self._check_faults(method, params)
                result = getattr(self, attribute)(params)
                if asyncio.iscoroutine(result):
                    result = await result
            except ApiError as exc:
                error = exc
            except Exception as exc:  # a bug in the fake: answer, record, and let the test see it
                error = ApiError(500, f"Internal Server Error: fake failed: {exc!r}")
            else:
                self._count_send(method, params)
                body = {"ok": True, "result": result}
        if error is not None:
            body = error.body()
        status = error.status if error is not None else 200
        self._record(Call(method, params, time.time(), status, body))
        await self._answer_late(method)
        return web.json_response(body, status=status)

    def _check_faults(self, method: str, params: dict) -> None:
        chat_id = params.get("chat_id")
        if isinstance(chat_id, int) and chat_id in self._migrated:
            raise bad_request("group chat was upgraded to a supergroup chat",
                              {"migrate_to_chat_id": self._migrated[chat_id]})
        failing = self._failing.get(chat_id) if isinstance(chat_id, int) else None
        if failing and method in failing[2]:
            raise ApiError(failing[0], failing[1])
        if self._limited_left > 0 and method in self._limited_methods:
            self._limited_left -= 1
            raise _too_many(self._limited_retry_after)
        overall, per_chat = self._rate
        if method in SEND_METHODS and (overall or per_chat):
            now = asyncio.get_running_loop().time()
            window = self._sent_times
            while window and window[0] <= now - 1.0:
                window.popleft()
            chat_window = self._chat_sent_times.setdefault(chat_id, deque())
            while chat_window and chat_window[0] <= now - 1.0:
                chat_window.popleft()
            if (overall and len(window) >= overall) or (per_chat and len(chat_window) >= per_chat):
                raise _too_many(1)

    def _count_send(self, method: str, params: dict) -> None:
        if method in SEND_METHODS and any(self._rate):
            now = asyncio.get_running_loop().time()
            self._sent_times.append(now)
            self._chat_sent_times.setdefault(params.get("chat_id"), deque()).append(now)

    def _chat_param(self, params: dict) -> dict:
        """The chat named by params["chat_id"] (created on first use, as if it existed)."""
        chat_id = params.get("chat_id")
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for chat in self._chats.values():
                if chat.get("username", "").lower() == chat_id[1:].lower():
                    return chat
            raise bad_request("chat not found")
        if isinstance(chat_id, bool) or not isinstance(chat_id, int) or chat_id == 0:
            raise bad_request("chat_id is empty" if chat_id in (None, "") else "chat not found")
        return self.add_chat(chat_id)

    def _format(self, params: dict, key: str, limit: int, required: bool) -> tuple[str, list]:
        """Visible text and entities of params[key] under its parse_mode, checked like Telegram."""
        prefix = "" if key == "text" else "caption_"
        what = "message" if key == "text" else "message caption"
        raw = params.get(key)
        if raw is None or raw == "":
            if required:
                raise bad_request("message text is empty")
            return "", []
        if not isinstance(raw, str):
            raw = str(raw)
        mode = str(params.get("parse_mode") or "")
        if mode.lower() == "html":
            try:
                text, entities = parse_html(raw, strict_entities=self.strict_entities)
            except HTMLParseError as exc:
                raise bad_request(f"can't parse entities: {exc}") from None
        elif mode == "" or mode.lower() in ("markdown", "markdownv2"):
            text, entities = raw, list(params.get(f"{prefix}entities") or [])
        else:
            raise bad_request("unsupported parse_mode")
        text, entities = _trim(text, entities)
        if not text and required:
            raise bad_request("message text is empty")
        if utf16_len(text) > limit:
            raise bad_request(f"{what} is too long")
        return text, entities

    def _stored_message(self, params: dict, action: str) -> dict:
        chat = self._chat_param(params)
        message = self._messages.get((chat["id"], params.get("message_id")))
        if message is None:
            raise bad_request(f"message to {action} not found")
        return message

    # -- Bot API methods ---------------------------------------------------------------------

    @_api("getMe")
    def _get_me(self, params: dict) -> dict:
        return {
            **self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False, "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    @_api("logOut")
    def _log_out(self, params: dict) -> bool:
        return True

    @_api("close")
    def _close(self, params: dict) -> bool:
        return True

    @_api("setWebhook")
    def _set_webhook(self, params: dict) -> bool:
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise bad_request("Bad Request: secret token contains unallowed characters")
        self._webhook_url = str(params.get("url") or "")
        self._webhook = {"url": self._webhook_url, "secret_token": secret,
                         "allowed_updates": params.get("allowed_updates")} if self._webhook_url else {}
        return True

    @_api("deleteWebhook")
    def _delete_webhook(self, params: dict) -> bool:
        self._webhook_url = ""
        self._webhook = {}
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    @_api("getWebhookInfo")
    def _get_webhook_info(self, params: dict) -> dict:
        return {"url": self._webhook_url, "has_custom_certificate": False,
                "pending_update_count": len(self._updates)}

    @_api("getUpdates")
    async def _get_updates(self, params: dict) -> list[dict]:
        if self._webhook_url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        if params.get("allowed_updates") is not None:
            self._allowed_updates = set(params["allowed_updates"]) or None
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        # A newer poller ends an older one, as Telegram does (409 Conflict).
        self._poll_generation += 1
        generation = self._poll_generation
        self._update_pulse.fire()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = [u for u in self._updates if self._wanted(u)][:limit]
            if batch or self._closing:
                return batch
            if generation != self._poll_generation:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure "
                                    "that only one bot instance is running")
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await self._update_pulse.wait(remaining)

    def _wanted(self, update: dict) -> bool:
        kind = next(k for k in update if k != "update_id")
        if self._allowed_updates is None:
            return kind not in OPT_IN_UPDATES
        return kind in self._allowed_updates

    @_api("setMyCommands")
    def _set_my_commands(self, params: dict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object" if not isinstance(commands, list)
                              else "too many commands")
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise bad_request("BOT_COMMAND_INVALID")
            description = command.get("description")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands[key] = [{"command": c["command"], "description": c["description"]}
                               for c in commands]
        return True

    @_api("getMyCommands")
    def _get_my_commands(self, params: dict) -> list[dict]:
        return self.my_commands(params.get("scope"), str(params.get("language_code") or ""))

    @_api("deleteMyCommands")
    def _delete_my_commands(self, params: dict) -> bool:
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands.pop(key, None)
        return True

    @_api("setMyDescription")
    def _set_my_description(self, params: dict) -> bool:
        self._profile["description"] = str(params.get("description") or "")
        return True

    @_api("getMyDescription")
    def _get_my_description(self, params: dict) -> dict:
        return {"description": self._profile.get("description", "")}

    @_api("setMyShortDescription")
    def _set_my_short_description(self, params: dict) -> bool:
        self._profile["short_description"] = str(params.get("short_description") or "")
        return True

    @_api("getMyShortDescription")
    def _get_my_short_description(self, params: dict) -> dict:
        return {"short_description": self._profile.get("short_description", "")}

    @_api("setChatMenuButton")
    def _set_chat_menu_button(self, params: dict) -> bool:
        return True

    @_api("sendMessage")
    def _send_message(self, params: dict) -> dict:
        chat = self._chat_param(params)
        text, entities = self._format(params, "text", MAX_TEXT_UTF16, required=True)
        markup = check_reply_markup(params.get("reply_markup"))
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        if markup:
            content["reply_markup"] = markup
        return self._new_message(chat["id"], self._bot_ref(), **content)

    @_api("sendPhoto")
    def _send_photo(self, params: dict) -> dict:
        return self._send_media(params, "photo")

    @_api("sendDocument")
    def _send_document(self, params: dict) -> dict:
        return self._send_media(params, "document")

    def _send_media(self, params: dict, kind: str) -> dict:
        chat = self._chat_param(params)
        if params.get(kind) in (None, ""):
            raise bad_request(f"there is no {kind} in the request")
        caption, entities = self._format(params, "caption", MAX_CAPTION_UTF16, required=False)
        markup = check_reply_markup(params.get("reply_markup"))
        file_id = f"{kind}-{next(self._query_ids)}"
        content: dict[str, Any] = {}
        if kind == "photo":
            content["photo"] = _photo_sizes(file_id)
        else:
            upload = params[kind]
            name = upload.filename if isinstance(upload, UploadedFile) else None
            content["document"] = {"file_id": file_id, "file_unique_id": f"u{file_id}",
                                   "file_name": name or "file"}
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        if markup:
            content["reply_markup"] = markup
        return self._new_message(chat["id"], self._bot_ref(), **content)

    @_api("editMessageText")
    def _edit_message_text(self, params: dict) -> dict | bool:
        text, entities = self._format(params, "text", MAX_TEXT_UTF16, required=True)
        markup = check_reply_markup(params.get("reply_markup"))
        if params.get("inline_message_id"):
            return True
        message = self._stored_message(params, "edit")
        if message.get("from", {}).get("id") != self.bot_id:
            raise bad_request("message can't be edited")
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        if (message["text"], message.get("entities", []), message.get("reply_markup")) == \
                (text, entities, markup):
            raise bad_request(NOT_MODIFIED)
        message["text"] = text
        _set_or_drop(message, "entities", entities)
        _set_or_drop(message, "reply_markup", markup)  # an edit without markup removes it
        message["edit_date"] = _now()
        return dict(message)

    @_api("editMessageReplyMarkup")
    def _edit_message_reply_markup(self, params: dict) -> dict | bool:
        markup = check_reply_markup(params.get("reply_markup"))
        if params.get("inline_message_id"):
            return True
        message = self._stored_message(params, "edit")
        if message.get("from", {}).get("id") != self.bot_id:
            raise bad_request("message can't be edited")
        if message.get("reply_markup") == markup:
            raise bad_request(NOT_MODIFIED)
        _set_or_drop(message, "reply_markup", markup)
        message["edit_date"] = _now()
        return dict(message)

    @_api("deleteMessage")
    def _delete_message(self, params: dict) -> bool:
        message = self._stored_message(params, "delete")
        del self._messages[(message["chat"]["id"], message["message_id"])]
        return True

    @_api("deleteMessages")
    def _delete_messages(self, params: dict) -> bool:
        chat = self._chat_param(params)
        for message_id in params.get("message_ids") or []:
            self._messages.pop((chat["id"], message_id), None)
        return True

    @_api("answerCallbackQuery")
    def _answer_callback_query(self, params: dict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._open_queries:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        if len(str(params.get("text") or "")) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._open_queries.discard(query_id)
        return True

    @_api("sendChatAction")
    def _send_chat_action(self, params: dict) -> bool:
        self._chat_param(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    @_api("getChat")
    def _get_chat(self, params: dict) -> dict:
        chat = self._chat_param(params)
        return {
            **chat, "accent_color_id": 0, "max_reaction_count": 11,
            "accepted_gift_types": {"unlimited_gifts": False, "limited_gifts": False,
                                    "unique_gifts": False, "premium_subscription": False,
                                    "gifts_from_channels": False},
        }

    @_api("getChatMember")
    def _get_chat_member(self, params: dict) -> dict:
        chat = self._chat_param(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise bad_request("invalid user_id specified")
        if user_id == self.bot_id:
            user = self._bot_ref()
        elif chat["type"] == "private" and user_id == chat["id"]:
            user = {"id": user_id, "is_bot": False, "first_name": chat.get("first_name", "Tester")}
        else:
            user = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        return _member(user, self._members.get((chat["id"], user_id), "member"))

    @_api("getChatAdministrators")
    def _get_chat_administrators(self, params: dict) -> list[dict]:
        chat = self._chat_param(params)
        if chat["type"] == "private":
            raise bad_request("there are no administrators in the private chat")
        admins = sorted(((user_id, status) for (chat_id, user_id), status in self._members.items()
                         if chat_id == chat["id"] and status in ("creator", "administrator")),
                        key=lambda pair: (pair[1] != "creator", pair[0]))
        return [_member(self._bot_ref() if user_id == self.bot_id else
                        {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}, status)
                for user_id, status in admins]

    @_api("getChatMemberCount")
    def _get_chat_member_count(self, params: dict) -> int:
        chat = self._chat_param(params)
        if chat["type"] == "private":
            return 2
        return 1 + sum(1 for (chat_id, _), status in self._members.items()
                       if chat_id == chat["id"] and status not in ("left", "kicked"))

    @_api("leaveChat")
    def _leave_chat(self, params: dict) -> bool:
        chat = self._chat_param(params)
        self._members[(chat["id"], self.bot_id)] = "left"
        return True


# --------------------------------------------------------------------------------------------
# Pure helpers


def check_reply_markup(markup: Any) -> dict | None:
    """Validate reply_markup as Telegram does; returns it if it is an inline keyboard."""
    if markup is None or markup == {}:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an "
                              "Array of Arrays")
        if sum(len(row) for row in rows) > MAX_INLINE_BUTTONS:
            raise bad_request("reply markup is too long")
        for row in rows:
            for button in row:
                _check_inline_button(button)
        return markup
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request("field \"keyboard\" of the ReplyKeyboardMarkup must be an Array "
                              "of Arrays")
        return None
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return None
    raise bad_request("can't parse reply keyboard markup JSON object")


_BUTTON_ACTIONS = ("url", "callback_data", "web_app", "login_url", "switch_inline_query",
                   "switch_inline_query_current_chat", "switch_inline_query_chosen_chat",
                   "copy_text", "callback_game", "pay")


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request("can't parse inline keyboard button: Field \"text\" must be of type String")
    actions = [key for key in _BUTTON_ACTIONS if key in button]
    if not actions:
        raise bad_request("can't parse inline keyboard button: Text buttons are unallowed in "
                          "the inline keyboard")
    if not button["text"].strip():
        raise bad_request("BUTTON_TEXT_INVALID")
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button:
        url = button["url"]
        if not isinstance(url, str) or not re.match(r"(https?|tg)://[^\s]+$", url):
            raise bad_request(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


def _member(user: dict, status: str) -> dict:
    """A ChatMember object PTB 22 can parse, for any status."""
    member: dict[str, Any] = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update({"can_be_edited": False, "is_anonymous": False},
                      **{right: True for right in ADMIN_RIGHTS})
    elif status == "restricted":
        member.update({"is_member": True, "until_date": 0},
                      **{right: False for right in RESTRICTED_RIGHTS})
    elif status == "kicked":
        member["until_date"] = 0
    return member


def _gone_description(chat_type: str, status: str) -> str:
    if chat_type == "private":
        return "Forbidden: bot was blocked by the user"
    if chat_type == "channel":
        return "Forbidden: bot is not a member of the channel chat"
    if status == "kicked":
        return f"Forbidden: bot was kicked from the {chat_type} chat"
    return f"Forbidden: bot is not a member of the {chat_type} chat"


def _too_many(retry_after: int) -> ApiError:
    return ApiError(429, f"Too Many Requests: retry after {retry_after}",
                    {"retry_after": retry_after})


def _infer_chat_type(chat_id: int) -> str:
    if chat_id > 0:
        return "private"
    return "supergroup" if chat_id <= -1_000_000_000_000 else "group"


def _photo_sizes(file_id: str) -> list[dict]:
    return [{"file_id": f"{file_id}-{w}", "file_unique_id": f"u{file_id}-{w}", "width": w,
             "height": w * 3 // 4, "file_size": w * 40} for w in (90, 320, 800)]


def _scope_key(scope: Any) -> str:
    if not scope:
        return '{"type": "default"}'
    return json.dumps(scope, sort_keys=True)


def _set_or_drop(message: dict, key: str, value: Any) -> None:
    if value:
        message[key] = value
    else:
        message.pop(key, None)


def _now() -> int:
    return int(time.time())  # Telegram dates are Unix seconds


def _same(actual: Any, expected: Any) -> bool:
    return actual == expected or (actual is not None and str(actual) == str(expected))


def _is_sent(call: Call, chat_id: Any) -> bool:
    return (call.method in ("sendMessage", "editMessageText") and call.ok
            and (chat_id is None or _same(call.chat_id, chat_id)))


def _describe(what: Any, params: dict) -> str:
    name = what if isinstance(what, str) else getattr(what, "__name__", "any call")
    return f"{name} {params}" if params else str(name)


def _short(params: dict) -> str:
    text = json.dumps(params, default=repr, ensure_ascii=False)
    return text if len(text) <= 160 else text[:157] + "..."


# --------------------------------------------------------------------------------------------
# Helpers for tests that drive python-telegram-bot by hand


def application_builder(fake: FakeTelegram):
    """A PTB ApplicationBuilder already pointed at the fake (add handlers, then .build())."""
    from telegram.ext import ApplicationBuilder

    return (ApplicationBuilder().token(fake.token)
            .base_url(f"{fake.url}/bot").base_file_url(f"{fake.url}/file/bot"))


@contextlib.asynccontextmanager
async def polling(application: Any, *, timeout: int = 1,
                  allowed_updates: list[str] | None = None) -> AsyncIterator[Any]:
    """Run a PTB Application as run_polling would (post_init, polling, post_stop), then stop it.

    `timeout` is the long-poll length; keep it short so the test ends quickly."""
    async with application:
        if application.post_init:
            await application.post_init(application)
        await application.updater.start_polling(poll_interval=0.0, timeout=timeout,
                                                allowed_updates=allowed_updates)
        await application.start()
        try:
            yield application
        finally:
            await application.updater.stop()
            await application.stop()
            if application.post_stop:
                await application.post_stop(application)
