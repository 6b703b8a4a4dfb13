"""The chart that comes with `/status CC platform` and every `blocked` alert, pure: a platform's
Observations → the share of anomalous measurements per network, day by day → PNG bytes.

Made to be read on a phone: 1200×900 px, large type, at most MAX_NETWORKS lines (the networks with
the most anomalous measurements; the rest summed as "others"), Okabe–Ito colours with a marker and
a dash pattern each (told apart without colour too), the block shaded. It carries no sentence to
translate — title `TikTok · AZ`, dates as numbers, networks by ASN and name — so one PNG serves
every language (the caption around it is translated), and it is rendered once per pair and hour.

matplotlib's Agg backend and its object API only (no pyplot, no display, no global state): safe to
run in a worker thread, off the event loop.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot import catalog
from bot.observations import Observation

DAYS = 14
MAX_NETWORKS = 8
# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
OTHERS_COLOUR = "#999999"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", "-.", ":", "-", "--", "-.", ":")
NAME_CHARS = 22
SIZE = (8, 6)  # inches, at DPI: 1200×900 px
DPI = 150


@dataclass(frozen=True)
class Line:
    label: str
    shares: tuple[float | None, ...]  # per day; None: no measurements that day


@dataclass(frozen=True)
class ChartData:
    title: str
    days: tuple[date, ...]
    lines: tuple[Line, ...]
    block_since: date | None  # shaded from that day to the end


def chart_data(observations: list[Observation], country: str, platform: str, last_day: date,
               block_since: datetime | None = None) -> ChartData:
    """The 14 days up to `last_day`: per network, (anomalies + confirmed) / measurements per day."""
    days = tuple(last_day - timedelta(days=DAYS - 1 - i) for i in range(DAYS))
    index = {day: i for i, day in enumerate(days)}
    bad: dict[int, list[int]] = defaultdict(lambda: [0] * DAYS)
    total: dict[int, list[int]] = defaultdict(lambda: [0] * DAYS)
    for obs in observations:
        i = index.get(obs.start.date())
        if i is None or obs.measurements <= 0:
            continue
        bad[obs.asn][i] += obs.anomalies + obs.confirmed
        total[obs.asn][i] += obs.measurements
    ranked = sorted(total, key=lambda asn: (-sum(bad[asn]), -sum(total[asn]), asn))
    shown, rest = ranked[:MAX_NETWORKS], ranked[MAX_NETWORKS:]
    if len(rest) == 1:  # "others" of one network is that network
        shown, rest = ranked, []
    lines = [Line(_network_label(asn), _shares(bad[asn], total[asn])) for asn in shown]
    if rest:
        lines.append(Line(f"others ({len(rest)})", _shares(
            [sum(bad[asn][i] for asn in rest) for i in range(DAYS)], [sum(total[asn][i] for asn in rest) for i in range(DAYS)]
        )))
    title = f"{catalog.PLATFORMS[platform].title} · {country}"
    since = block_since.date() if block_since is not None else None
    return ChartData(title, days, tuple(lines), since if since is None or since <= last_day else None)


def _shares(bad: list[int], total: list[int]) -> tuple[float | None, ...]:
    return tuple(b / t if t else None for b, t in zip(bad, total))


def _network_label(asn: int) -> str:
    name = catalog.network_name(asn) or ""
    words = [w for w in name.split() if w.lower().strip(".,") not in ("llc", "ltd", "jsc", "cjsc", "pjsc", "ojsc", "plc", "inc", "limited")]
    short = " ".join(words)[:NAME_CHARS].rstrip()
    return f"AS{asn} {short}".strip()


def render_png(data: ChartData) -> bytes:
    """The chart as PNG bytes (blocks for a fraction of a second: call it in a worker thread)."""
    # imported here: matplotlib costs ~0.3 s and a font-cache build to import; the bot starts without it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    x = list(range(len(data.days)))
    if data.block_since is not None and data.block_since >= data.days[0]:
        start = data.days.index(data.block_since) if data.block_since in data.days else 0
        axes.axvspan(start - 0.5, len(x) - 0.5, color="#D55E00", alpha=0.12, linewidth=0)
    elif data.block_since is not None:  # began before the chart: all of it is the block
        axes.axvspan(-0.5, len(x) - 0.5, color="#D55E00", alpha=0.12, linewidth=0)
    for n, line in enumerate(data.lines):
        others = line.label.startswith("others")
        axes.plot(
            x, [float("nan") if v is None else v for v in line.shares],
            label=line.label, color=OTHERS_COLOUR if others else COLOURS[n % len(COLOURS)],
            marker="." if others else MARKERS[n % len(MARKERS)], linestyle=":" if others else DASHES[n % len(DASHES)],
            linewidth=2.5, markersize=8,
        )
    axes.set_ylim(-0.03, 1.03)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes.set_xlim(-0.5, len(x) - 0.5)
    ticks = x[::2] if len(x) > 8 else x
    axes.set_xticks(ticks, [data.days[i].strftime("%d.%m") for i in ticks])
    axes.tick_params(labelsize=15)
    axes.grid(True, axis="y", alpha=0.3)
    axes.set_title(f"{data.title}   {data.days[0]:%Y-%m-%d} – {data.days[-1]:%Y-%m-%d} UTC", fontsize=18, loc="left")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    if data.lines:
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=13, frameon=False)
    else:
        axes.text(0.5, 0.5, "—", transform=axes.transAxes, ha="center", va="center", fontsize=40, color=OTHERS_COLOUR)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
