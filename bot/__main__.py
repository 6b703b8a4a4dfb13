"""`python -m bot …` is the same program as `blockwatch …`."""

import sys

from bot.cli import main

sys.exit(main())
