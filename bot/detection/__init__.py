"""The detector's parts, one job per module; `bot.detector` ties them into `detect()` and re-exports its types."""
