"""Settings from the environment (a `.env` file in the working directory is read first; real variables win).

Every bad or missing value is reported as one line naming the variable and what to put there:
`ConfigError` carries that line and the CLI prints it instead of a traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

from dotenv import dotenv_values

PUBLIC_OONI_API = "https://api.ooni.io"
PUBLIC_IODA_API = "https://api.ioda.inetintel.cc.gatech.edu/v2"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


# Telegram delivers webhooks only to these ports (a self-hosted Bot API server delivers anywhere)
WEBHOOK_PORTS = (443, 80, 88, 8443)


class ConfigError(Exception):
    """A setting is missing or malformed; str(error) is the one line to show."""


class Address(NamedTuple):
    """LISTEN: where `run` serves /healthz and the webhook."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    telegram_bot_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    ooni_api_url: str = PUBLIC_OONI_API
    ioda_api_url: str = PUBLIC_IODA_API
    database_path: Path = Path("data/blockwatch.db")
    admin_ids: frozenset[int] = frozenset()
    poll_interval: float = 900
    send_rate: float = 30
    signal_min_reporters: int = 5
    signal_window: float = 7200
    report_retention_days: int = 30
    log_level: str = "INFO"
    webhook_url: str | None = None  # None: long polling
    listen: Address = Address("127.0.0.1", 8080)

    def require_token(self) -> str:
        if not self.telegram_bot_token:
            raise ConfigError(
                "TELEGRAM_BOT_TOKEN is not set: put the token from @BotFather in .env "
                "(TELEGRAM_BOT_TOKEN=123456:ABC...) or the environment"
            )
        return self.telegram_bot_token


def _url(name: str, value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name} must be an http(s) URL such as https://example.org, not {value!r}")
    return value.rstrip("/")


def _positive(name: str, value: str, kind: type = float) -> float | int:
    try:
        number = kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what} greater than 0, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be greater than 0, not {value!r}")
    return number


def _listen(value: str) -> Address:
    host, _, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]:8080
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port (tests)
        raise ConfigError(f"LISTEN must be host:port such as 127.0.0.1:8080 or 0.0.0.0:8080, not {value!r}")
    return Address(host, int(port))


def _webhook_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.fragment:
        raise ConfigError(f"WEBHOOK_URL must be the bot's public https URL such as https://bot.example.org/telegram, not {value!r}")
    try:
        parsed.port
    except ValueError:
        raise ConfigError(f"WEBHOOK_URL has a bad port: {value!r}") from None
    return value


def _admin_ids(value: str) -> frozenset[int]:
    ids = set()
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.lstrip("-").isdigit():
            raise ConfigError(
                f"ADMIN_IDS must be comma-separated Telegram user ids such as 12345,67890, not {value!r}"
            )
        ids.add(int(part))
    return frozenset(ids)


def _token(value: str) -> str:
    bot_id, _, secret = value.partition(":")
    if not bot_id.isdigit() or not secret or any(c.isspace() for c in value):
        raise ConfigError("TELEGRAM_BOT_TOKEN looks malformed: it should look like 123456:ABC-DEF..., as @BotFather gave it")
    return value


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
    """Read the settings; `environ` defaults to os.environ, merged over `env_file` when it exists."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        value = values.get(name)
        return value.strip() if value is not None and value.strip() != "" else None

    kwargs: dict = {}
    if (token := get("TELEGRAM_BOT_TOKEN")) is not None:
        kwargs["telegram_bot_token"] = _token(token)
    if (v := get("TELEGRAM_API_URL")) is not None:
        kwargs["telegram_api_url"] = _url("TELEGRAM_API_URL", v)
    if (v := get("OONI_API_URL")) is not None:
        kwargs["ooni_api_url"] = _url("OONI_API_URL", v)
    if (v := get("IODA_API_URL")) is not None:
        kwargs["ioda_api_url"] = _url("IODA_API_URL", v)
    if (v := get("DATABASE_PATH")) is not None:
        kwargs["database_path"] = Path(v)
    if (v := get("ADMIN_IDS")) is not None:
        kwargs["admin_ids"] = _admin_ids(v)
    if (v := get("POLL_INTERVAL")) is not None:
        kwargs["poll_interval"] = _positive("POLL_INTERVAL", v)
    if (v := get("SEND_RATE")) is not None:
        kwargs["send_rate"] = _positive("SEND_RATE", v)
    if (v := get("SIGNAL_MIN_REPORTERS")) is not None:
        kwargs["signal_min_reporters"] = _positive("SIGNAL_MIN_REPORTERS", v, int)
        if kwargs["signal_min_reporters"] < 2:
            raise ConfigError(f"SIGNAL_MIN_REPORTERS must be at least 2 (one person never makes a signal), not {v!r}")
    if (v := get("SIGNAL_WINDOW")) is not None:
        kwargs["signal_window"] = _positive("SIGNAL_WINDOW", v)
    if (v := get("REPORT_RETENTION_DAYS")) is not None:
        kwargs["report_retention_days"] = _positive("REPORT_RETENTION_DAYS", v, int)
    if (v := get("LOG_LEVEL")) is not None:
        if v.upper() not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {v!r}")
        kwargs["log_level"] = v.upper()
    if (v := get("WEBHOOK_URL")) is not None:
        kwargs["webhook_url"] = _webhook_url(v)
    if (v := get("LISTEN")) is not None:
        kwargs["listen"] = _listen(v)
    return Settings(**kwargs)


def warn_about(settings: Settings, log: logging.Logger) -> None:
    """Settings that work but are probably a mistake."""
    if settings.poll_interval < 300 and settings.ooni_api_url == PUBLIC_OONI_API:
        log.warning(
            "POLL_INTERVAL=%s polls the public OONI API more often than every 5 minutes; "
            "its quota is about 4000 units an hour per address",
            settings.poll_interval,
        )
    if settings.webhook_url and settings.telegram_api_url == "https://api.telegram.org":
        url = urlparse(settings.webhook_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        if url.scheme != "https" or port not in WEBHOOK_PORTS:
            log.warning(
                "WEBHOOK_URL=%s: Telegram delivers webhooks only over https to ports %s",
                settings.webhook_url, ", ".join(map(str, WEBHOOK_PORTS)),
            )
