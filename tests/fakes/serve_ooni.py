"""Serve the fake OONI API by hand, to try the CLI the way a user would:

    python -m tests.fakes.serve_ooni --port 8765 &
    OONI_API_URL=http://127.0.0.1:8765 blockwatch backtest --country AZ --platform tiktok \
        --since 2022-09-13 --until 2022-09-20 --step 1

It serves the real 2024-01-01 background rows and the Azerbaijan 2022 TikTok episode (re-dated
real rows: blocked on AS29049, AS41997 and AS31721 from 2022-09-14 06:00 to 2022-09-16 12:00).
"""

import argparse
import asyncio
from datetime import datetime, timedelta

from tests.fakes.ooni import FakeOoni, az_tiktok_episode, load_fastpath_background


async def serve(port: int) -> None:
    rows = load_fastpath_background() + az_tiktok_episode(datetime(2022, 9, 14, 6), datetime(2022, 9, 16, 12), after=timedelta(hours=72))
    async with FakeOoni(rows, port=port) as fake:
        print(f"fake OONI API on {fake.url} with {len(rows)} rows; Ctrl-C to stop", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    try:
        asyncio.run(serve(parser.parse_args().port))
    except KeyboardInterrupt:
        pass
