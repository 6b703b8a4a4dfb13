"""IODA as a measurement source: `IodaSource` (source.py), its requests (api.py) and dashboard links (dashboard.py)."""

from bot.sources.base import SourceError
from bot.sources.ioda.source import IodaSource

__all__ = ["IodaSource", "SourceError"]
