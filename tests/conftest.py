"""Fixtures every end-to-end test uses: the fake Bot API and the real bot polling it."""

import os

import pytest

from tests.fakes.telegram import FakeTelegram
from tests.harness import running_bot

ADMIN = 777

# every `blockwatch run` a test starts serves /healthz on a free port, never the default 8080 that
# another test (or another checkout's suite on this machine) may hold; a test that needs to know the
# port sets LISTEN itself
os.environ.setdefault("LISTEN", "127.0.0.1:0")


@pytest.fixture
async def telegram():
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "blockwatch.db", admin_ids=frozenset({ADMIN})) as running:
        yield running
