"""The command line: `blockwatch run | console | poll --once | backup PATH | backtest …` (also `python -m bot …`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
from importlib import metadata

from bot.config import ConfigError, Settings, load_settings, warn_about

log = logging.getLogger("blockwatch")


def setup_logging(level: str) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)  # also when something configured logging before us
    # httpx logs every request URL at INFO, and those URLs contain the bot token
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font cache is built on first use, said at INFO
    # PTB's DEBUG lines carry whole updates — reporters' ids and names: DEBUG is for our own loggers only
    logging.getLogger("telegram").setLevel(max(logging.INFO, logging.getLevelName(level)))


def open_store(settings: Settings):
    from storage.db import Store

    try:
        return Store.open_sync(settings.database_path)
    except (OSError, sqlite3.Error) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"DATABASE_PATH {str(settings.database_path)!r} cannot be used as the database: {reason}") from None


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from bot import runner

    settings.require_token()
    warn_about(settings, log)
    store = open_store(settings)  # a bad DATABASE_PATH is said before any waiting
    check_secret(settings, store)  # so is a lost pseudonym secret
    asyncio.run(runner.run(settings, store))
    return 0


def check_secret(settings: Settings, store) -> None:
    """MissingSecret (one line, exit 2) when the reporters' secret is gone while their reports are stored."""
    from bot.pseudonym import Pseudonyms
    from storage import reports

    try:
        Pseudonyms.for_database(settings.database_path, store.run_sync(reports.stored_reports))
    except ConfigError:
        asyncio.run(store.close())
        raise


def cmd_reset_crowd(settings: Settings, args: argparse.Namespace) -> int:
    """Start the crowd data afresh after the pseudonym secret was lost: the reports made under it go."""
    from bot.pseudonym import secret_path
    from storage import reports

    store = open_store(settings)
    try:
        removed = store.run_sync(reports.forget_all_reporters)
    finally:
        asyncio.run(store.close())
    secret = secret_path(settings.database_path)
    print(f"deleted {removed} crowd reports and every reporter pseudonym in {settings.database_path}; daily counts and "
          f"signals kept" + ("" if secret is None or secret.exists() else f"; the next start creates a new secret in {secret}"))
    return 0


def cmd_console(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import build_services
    from bot.console import Console

    async def main() -> None:
        store = open_store(settings)
        extra_admin = {args.user_id} if args.admin else set()
        console_settings = Settings(**{**settings.__dict__, "admin_ids": settings.admin_ids | extra_admin})
        # replies only: no poll loop, and nothing drains the outbox (there is no Telegram to send alerts to);
        # /status still fetches what it needs from OONI and IODA on demand
        services = build_services(console_settings, store, sending=False, polling=False, on_demand=True)
        try:
            async with Console(services, user_id=args.user_id, language=args.language) as console:
                await console.interact()
                return console.request.closed
        finally:
            await services.poller.close()
            await store.close()

    if asyncio.run(main()):
        quiet_stdout()
    return 0


def cmd_poll(settings: Settings, args: argparse.Namespace) -> int:
    from bot import poller
    from bot.app import build_services

    return asyncio.run(poller.poll_once_command(build_services(settings, open_store(settings), sending=False, polling=False)))


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.backup import backup

    database, secret = backup(settings.database_path, Path(args.path))
    print(f"backed up {settings.database_path} to {database}" + (f" and its secret to {secret}" if secret else
          " (it has no .secret yet: no reporter pseudonyms to keep)"))
    return 0


def cmd_backtest(settings: Settings, args: argparse.Namespace) -> int:
    from bot import backtest

    return asyncio.run(backtest.backtest_command(settings, args))


def version() -> str:
    try:
        return metadata.version("blockwatch")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="blockwatch", description="A Telegram bot that watches internet censorship (OONI).")
    top.add_argument("--version", action="version", version=f"blockwatch {version()}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="start the bot (long polling, or webhook with WEBHOOK_URL), the poller and /healthz on LISTEN")
    console = commands.add_parser("console", help="chat with the bot in this terminal, without a token")
    console.add_argument("--user-id", type=int, default=10_000, help="the Telegram user id you pretend to be")
    console.add_argument("--language", default="en", help="your Telegram language (en, az, ru)")
    console.add_argument("--admin", action="store_true", help="be an admin for this session")
    poll = commands.add_parser("poll", help="one poll cycle over every watched country/platform; prints the events")
    poll.add_argument("--once", action="store_true", required=True, help="run one cycle and exit")
    backup = commands.add_parser("backup", help="copy the database (online, while the bot runs) and its .secret")
    backup.add_argument("path", metavar="PATH", help="a new file, or a folder that gets blockwatch-<time>.db; the secret goes to PATH.secret")
    commands.add_parser("reset-crowd", help="after losing DATABASE_PATH.secret: delete the crowd reports made with it and start afresh")
    backtest = commands.add_parser("backtest", help="replay OONI history through the detector and print the events")
    backtest.add_argument("--country", required=True, help="ISO code or name, e.g. AZ")
    backtest.add_argument("--platform", action="append", required=True, help="a platform; repeat for more")
    backtest.add_argument("--since", required=True, help="YYYY-MM-DD")
    backtest.add_argument("--until", required=True, help="YYYY-MM-DD, exclusive: replays from --since 00:00 UTC up to --until 00:00 UTC, as the OONI API counts")
    backtest.add_argument("--step", type=float, default=None, help="hours between simulated polls (default POLL_INTERVAL); each step sees only the hours that have ended")
    backtest.add_argument("--json", action="store_true", help="one JSON object per event and line")
    return top


COMMANDS = {"run": cmd_run, "console": cmd_console, "poll": cmd_poll, "backup": cmd_backup, "reset-crowd": cmd_reset_crowd, "backtest": cmd_backtest}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(settings.log_level)
        return COMMANDS[args.command](settings, args)
    except ConfigError as error:
        print(f"blockwatch: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `blockwatch … | head` stopped reading: that is not an error
        quiet_stdout()
        return 0


def quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
