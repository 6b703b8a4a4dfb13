"""Fixtures every end-to-end test uses: the fake Bot API and the real bot polling it."""

import pytest

from tests.fakes.telegram import FakeTelegram
from tests.harness import running_bot

ADMIN = 777


@pytest.fixture
async def telegram():
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(telegram, tmp_path):
    async with running_bot(telegram, tmp_path / "blockwatch.db", admin_ids=frozenset({ADMIN})) as running:
        yield running
