"""OONI as a measurement source: `OoniSource` (source.py) and the parts it is made of."""

from bot.sources.base import SourceError
from bot.sources.ooni.source import OoniSource

__all__ = ["OoniSource", "SourceError"]
