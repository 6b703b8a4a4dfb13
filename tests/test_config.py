"""Settings: defaults, .env loading, and one clear line for every bad value."""

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings


def test_defaults_follow_the_contract():
    settings = load_settings({}, env_file=None)
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.ooni_api_url == "https://api.ooni.io"
    assert settings.database_path == Path("data/blockwatch.db")
    assert settings.admin_ids == frozenset()
    assert (settings.poll_interval, settings.send_rate) == (900, 30)
    assert (settings.signal_min_reporters, settings.signal_window, settings.report_retention_days) == (5, 7200, 30)
    assert settings.log_level == "INFO"
    assert settings.webhook_url is None  # long polling
    assert settings.listen == ("127.0.0.1", 8080) and str(settings.listen) == "127.0.0.1:8080"


def test_listen_and_webhook_url_are_read():
    settings = load_settings({"LISTEN": "[::1]:8443", "WEBHOOK_URL": "https://bot.example.org/hook"}, env_file=None)
    assert settings.listen == ("::1", 8443) and str(settings.listen) == "[::1]:8443"
    assert settings.webhook_url == "https://bot.example.org/hook"


def test_env_file_is_read_and_real_environment_wins(tmp_path):
    env = tmp_path / ".env"
    env.write_text("POLL_INTERVAL=60\nADMIN_IDS=1, 2\nTELEGRAM_API_URL=http://127.0.0.1:9/\n")
    settings = load_settings({"POLL_INTERVAL": "5"}, env_file=env)
    assert settings.poll_interval == 5
    assert settings.admin_ids == {1, 2}
    assert settings.telegram_api_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "name, value",
    [
        ("POLL_INTERVAL", "soon"),
        ("POLL_INTERVAL", "0"),
        ("SEND_RATE", "-1"),
        ("ADMIN_IDS", "12,abc"),
        ("SIGNAL_MIN_REPORTERS", "1"),
        ("REPORT_RETENTION_DAYS", "2.5"),
        ("TELEGRAM_API_URL", "telegram"),
        ("LOG_LEVEL", "LOUD"),
        ("TELEGRAM_BOT_TOKEN", "not a token"),
        ("LISTEN", "8080"),
        ("LISTEN", "0.0.0.0:http"),
        ("LISTEN", "127.0.0.1:70000"),
        ("WEBHOOK_URL", "bot.example.org/hook"),
        ("WEBHOOK_URL", "ftp://bot.example.org/hook"),
        ("WEBHOOK_URL", "https://bot.example.org:99999/hook"),
    ],
)
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(ConfigError) as error:
        load_settings({name: value}, env_file=None)
    assert str(error.value).startswith(name)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("database", ["not-a-database.txt", "a-folder", "/proc/no-such-folder/x.db"])
def test_a_database_path_that_cannot_be_used_is_one_line(tmp_path, database):
    (tmp_path / "not-a-database.txt").write_text("hello, I am not SQLite\n" * 100)
    (tmp_path / "a-folder").mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TELEGRAM_BOT_TOKEN": "1:abc", "DATABASE_PATH": str(tmp_path / database),
           "TELEGRAM_API_URL": "http://127.0.0.1:9"}  # should it ever get past the database, it reaches nothing
    done = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("blockwatch: DATABASE_PATH") and done.stderr.strip().count("\n") == 0, done.stderr


def test_run_without_a_token_says_so_in_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_PATH": str(tmp_path / "db.sqlite")}
    done = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "TELEGRAM_BOT_TOKEN" in done.stderr and "Traceback" not in done.stderr


def test_fast_polling_warns_only_against_the_public_ooni_api(caplog):
    import logging

    from bot.config import warn_about

    log = logging.getLogger("test-config")
    warn_about(load_settings({"POLL_INTERVAL": "60"}, env_file=None), log)
    assert any("POLL_INTERVAL=60" in r.getMessage() for r in caplog.records)
    caplog.clear()
    warn_about(load_settings({"POLL_INTERVAL": "1", "OONI_API_URL": "http://127.0.0.1:8765"}, env_file=None), log)
    warn_about(load_settings({"POLL_INTERVAL": "300"}, env_file=None), log)
    assert caplog.records == []


def test_a_webhook_telegram_cannot_reach_is_warned_about(caplog):
    import logging

    from bot.config import warn_about

    log = logging.getLogger("test-config")
    for url in ("http://bot.example.org/hook", "https://bot.example.org:8080/hook"):
        caplog.clear()
        warn_about(load_settings({"WEBHOOK_URL": url}, env_file=None), log)
        assert [r.getMessage() for r in caplog.records] == [f"WEBHOOK_URL={url}: Telegram delivers webhooks only over https to ports 443, 80, 88, 8443"]
    caplog.clear()
    warn_about(load_settings({"WEBHOOK_URL": "https://bot.example.org:8443/hook"}, env_file=None), log)
    # a self-hosted Bot API server delivers anywhere
    warn_about(load_settings({"WEBHOOK_URL": "http://10.0.0.2:9000/", "TELEGRAM_API_URL": "http://127.0.0.1:8081"}, env_file=None), log)
    assert caplog.records == []


def test_debug_logging_never_turns_on_ptbs_update_dumps():
    import logging

    from bot.cli import setup_logging

    telegram_logger = logging.getLogger("telegram")
    before = telegram_logger.level
    try:
        setup_logging("DEBUG")
        assert telegram_logger.getEffectiveLevel() == logging.INFO  # PTB's DEBUG lines hold users' ids
        assert logging.getLogger("bot.poller").isEnabledFor(logging.DEBUG)
        setup_logging("WARNING")
        assert telegram_logger.getEffectiveLevel() == logging.WARNING
    finally:
        telegram_logger.setLevel(before)
        logging.getLogger().setLevel(logging.WARNING)


def test_ioda_api_url_has_the_contracts_default_and_is_checked():
    assert load_settings({}, env_file=None).ioda_api_url == "https://api.ioda.inetintel.cc.gatech.edu/v2"
    assert load_settings({"IODA_API_URL": "http://127.0.0.1:8766/v2/"}, env_file=None).ioda_api_url.startswith("http://127.0.0.1:8766/v2")
    with pytest.raises(ConfigError) as error:
        load_settings({"IODA_API_URL": "ftp://ioda"}, env_file=None)
    assert "IODA_API_URL" in str(error.value)
