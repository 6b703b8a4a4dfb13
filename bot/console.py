"""`blockwatch console`: chat with the bot in a terminal, as one user, through the real handlers
and database — no Telegram token needed.

The real python-telegram-bot Application runs unchanged; only its HTTP layer is swapped for
`ConsoleRequest`, which answers the Bot API calls locally and prints what the bot sends.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from telegram import Update
from telegram.request import BaseRequest, RequestData

from bot.app import build_application
from bot.render import to_terminal
from bot.services import Services

CONSOLE_TOKEN = "1:console"
BOT_USER = {"id": 1, "is_bot": True, "first_name": "Blockwatch", "username": "blockwatch_console_bot"}


class ConsoleRequest(BaseRequest):
    """Answers Bot API methods in-process; sent messages are printed to `out`."""

    def __init__(self, out: TextIO, chat: dict, user: dict):
        self.out = out
        self.chat = chat
        self.user = user
        self.message_ids = itertools.count(1000)
        self.buttons: dict[str, tuple[int, str]] = {}  # "1" → (message_id, callback_data)
        self.button_numbers = itertools.count(1)
        self.photo_numbers = itertools.count(1)
        self.closed = False  # the reader went away (`blockwatch console | head`): stop quietly

    def print(self, *lines: str) -> None:
        if self.closed:
            return
        try:
            print(*lines, sep="\n", file=self.out)
            self.out.flush()
        except BrokenPipeError:
            self.closed = True

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    def _message(self, params: dict, message_id: int | None = None) -> dict:
        return {
            "message_id": message_id or next(self.message_ids),
            "date": int(time.time()),
            "chat": self.chat,
            "from": BOT_USER,
            "text": to_terminal(str(params.get("text", ""))),
        }

    def _photo(self, request_data: RequestData | None) -> dict:
        """A chart the bot sends: written to a file the user can open (a terminal shows no pictures)."""
        files = (request_data.multipart_data or {}) if request_data else {}
        number = next(self.photo_numbers)
        for _name, (_filename, content, *_rest) in files.items():
            path = Path(tempfile.gettempdir()) / f"blockwatch-chart-{os.getpid()}-{number}.png"
            path.write_bytes(content)
            self.print(f"bot> [picture: {path}]")
            break
        return {"file_id": f"console-photo-{number}", "file_unique_id": f"console-{number}", "width": 1200, "height": 900}

    def _show(self, text: str, markup: Any, message_id: int, edited: bool = False) -> None:
        prefix = "bot (edited)> " if edited else "bot> "
        lines = to_terminal(text).splitlines() or [""]
        shown = [prefix + lines[0], *("     " + line for line in lines[1:])]
        if isinstance(markup, str):
            markup = json.loads(markup)
        # as in Telegram, an edited message's old buttons are gone
        self.buttons = {k: v for k, v in self.buttons.items() if v[0] != message_id}
        for row in (markup or {}).get("inline_keyboard", []):
            for button in row:
                key = str(next(self.button_numbers))
                self.buttons[key] = (message_id, button.get("callback_data", ""))
                shown.append(f"     [{key}] {button.get('text')}   (type #{key} to press)")
        self.print(*shown)

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None, **_: Any) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data else {}
        result: Any = True
        if api_method == "getMe":
            result = BOT_USER
        elif api_method == "sendMessage":
            result = self._message(params)
            self._show(str(params.get("text", "")), params.get("reply_markup"), result["message_id"])
        elif api_method == "editMessageText":
            result = self._message(params, int(params.get("message_id", 0)) or None)
            self._show(str(params.get("text", "")), params.get("reply_markup"), result["message_id"], edited=True)
        elif api_method == "sendPhoto":
            result = {**self._message(params), "photo": [self._photo(request_data)]}
            result.pop("text")
            self._show(str(params.get("caption", "")), params.get("reply_markup"), result["message_id"])
        elif api_method == "answerCallbackQuery" and params.get("text"):
            self.print(f"bot (notice)> {params['text']}")
        elif api_method == "getChatMember":
            result = {"status": "creator", "user": self.user}
        elif api_method == "getUpdates":
            result = []
        return 200, json.dumps({"ok": True, "result": result}).encode()


class Console:
    """Turns typed lines into Telegram updates for the Application."""

    def __init__(self, services: Services, out: TextIO = sys.stdout, user_id: int = 10_000, language: str = "en"):
        self.user = {"id": user_id, "is_bot": False, "first_name": "You", "language_code": language}
        self.chat = {"id": user_id, "type": "private", "first_name": "You"}
        self.request = ConsoleRequest(out, self.chat, self.user)
        self.application = build_application(services, token=CONSOLE_TOKEN, request=self.request)
        self.update_ids = itertools.count(1)
        self.out = out

    def _update(self, line: str) -> dict:
        update_id = next(self.update_ids)
        if line.startswith("#") and line[1:] in self.request.buttons:
            message_id, data = self.request.buttons[line[1:]]
            return {
                "update_id": update_id,
                "callback_query": {
                    "id": str(update_id),
                    "from": self.user,
                    "chat_instance": "console",
                    "data": data,
                    "message": {"message_id": message_id, "date": int(time.time()), "chat": self.chat, "from": BOT_USER, "text": ""},
                },
            }
        message = {"message_id": next(self.request.message_ids), "date": int(time.time()), "chat": self.chat, "from": self.user, "text": line}
        if line.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(line.split()[0])}]
        return {"update_id": update_id, "message": message}

    async def send(self, line: str) -> None:
        """One line typed by the user, handled to the end."""
        await self.application.process_update(Update.de_json(self._update(line), self.application.bot))

    async def __aenter__(self) -> "Console":
        await self.application.initialize()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.application.shutdown()

    async def interact(self, lines: TextIO = sys.stdin) -> None:
        self.request.print("Blockwatch console — you are chatting with the bot. Try /help; Ctrl-D to leave.")
        loop = asyncio.get_running_loop()
        while not self.request.closed:
            if lines.isatty():
                print("you> ", end="", file=self.out, flush=True)
            line = await loop.run_in_executor(None, lines.readline)
            if not line:
                break
            line = line.strip()
            if line:
                await self.send(line)
