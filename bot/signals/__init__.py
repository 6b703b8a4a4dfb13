"""The crowd-signal workflow: reports in, signals raised for the admins, admins' decisions out.

- `views.py`     what a signal's messages show and in which languages they are rendered
- `workflow.py`  on the DB thread, each step in one transaction: a report accepted, a signal raised,
                 confirmed or dismissed, the sweep for signals no report raised
- `service.py`   the async calls the handlers make (submit, pending, review, forget)
- `upkeep.py`    the loop that sweeps and purges (app.build_services starts it)

The rules themselves are pure, in bot/crowd.py. Reporters stay safe here: a report is stored
under a keyed pseudonym only (bot/pseudonym.py); nothing logged names a reporter or their chat;
admins see counts and networks, never who.
"""

from bot.signals.service import Outcome, forget, pending, review, rules_of, submit
from bot.signals.upkeep import upkeep_loop

__all__ = ["Outcome", "forget", "pending", "review", "rules_of", "submit", "upkeep_loop"]
