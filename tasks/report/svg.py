"""A small SVG canvas for the charts every monitored batch draws (drift bars, heat map, overlays, performance).

Why not matplotlib here: importing it costs about 0.9 s of CPU per fresh process and laying out and rasterising
the four monitor charts another 1-2 s, most of a one-batch ``driftgate monitor`` (issue 13's budget is 3 s).
These charts are bars, cells and lines, which SVG states directly: written as text in milliseconds, vector
(sharp at any zoom), a few kilobytes, and shown by every browser, the HTML reports (inlined as data URIs),
Prefect's markdown artifacts and GitHub. The gate's statistical figures (forest plot, calibration) stay in
matplotlib: a retrain takes minutes anyway.

Text widths are estimated (``text_width``: 0.58 em per character, sans-serif), so layouts leave a margin.
Every element may carry a ``tip``: an SVG ``<title>`` a browser shows on hover (the cell's exact numbers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
# Colours of the charts (matplotlib's tab10 blue/orange/red, so the SVG and PNG figures read alike).
BLUE = "#1f77b4"
ORANGE = "#ff7f0e"
RED = "#d62728"
GREY = "#7f7f7f"
INK = "#222222"
GRID = "#e6e6e6"


def text_width(text: str, size: float) -> float:
    """Estimated width of ``text`` at ``size`` px in a sans-serif font."""
    return 0.58 * size * len(text)


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if math.isfinite(value) else "0"


@dataclass
class Canvas:
    """An SVG document built element by element; ``save`` writes it atomically."""

    width: float
    height: float
    parts: list[str] = field(default_factory=list)

    def _add(self, tag: str, attributes: dict[str, str | float | None], tip: str | None = None, body: str = "") -> None:
        attrs = " ".join(
            f"{name.replace('_', '-')}={quoteattr(value if isinstance(value, str) else _number(value))}"
            for name, value in attributes.items()
            if value is not None
        )
        inner = (f"<title>{escape(tip)}</title>" if tip else "") + body
        self.parts.append(f"<{tag} {attrs}>{inner}</{tag}>" if inner else f"<{tag} {attrs}/>")

    def rect(
        self,
        x: float,
        y: float,
        width: float,
        height: float,
        *,
        fill: str = "none",
        stroke: str | None = None,
        stroke_width: float | None = None,
        opacity: float | None = None,
        tip: str | None = None,
    ) -> None:
        self._add(
            "rect",
            {
                "x": x,
                "y": y,
                "width": max(width, 0.0),
                "height": max(height, 0.0),
                "fill": fill,
                "stroke": stroke,
                "stroke_width": stroke_width,
                "fill_opacity": opacity,
            },
            tip,
        )

    def line(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        *,
        stroke: str = INK,
        width: float = 1.0,
        dash: str | None = None,
    ) -> None:
        self._add(
            "line",
            {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "stroke": stroke, "stroke_width": width, "stroke_dasharray": dash},
        )

    def polyline(
        self, points: Sequence[tuple[float, float]], *, stroke: str, width: float = 1.5, dash: str | None = None
    ) -> None:
        """A line through ``points``; a point with a non-finite coordinate breaks it into segments."""
        segment: list[tuple[float, float]] = []
        for point in [*points, (math.nan, math.nan)]:
            if all(math.isfinite(v) for v in point):
                segment.append(point)
                continue
            if len(segment) > 1:
                path = " ".join(f"{_number(x)},{_number(y)}" for x, y in segment)
                self._add(
                    "polyline",
                    {"points": path, "fill": "none", "stroke": stroke, "stroke_width": width, "stroke_dasharray": dash},
                )
            segment = []

    def polygon(self, points: Sequence[tuple[float, float]], *, fill: str, opacity: float = 1.0) -> None:
        finite = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
        if len(finite) > 2:
            path = " ".join(f"{_number(x)},{_number(y)}" for x, y in finite)
            self._add("polygon", {"points": path, "fill": fill, "fill_opacity": opacity, "stroke": "none"})

    def marker(self, x: float, y: float, *, fill: str, square: bool = False, tip: str | None = None) -> None:
        if not (math.isfinite(x) and math.isfinite(y)):
            return
        if square:
            self.rect(x - 3, y - 3, 6, 6, fill=fill, tip=tip)
        else:
            self._add("circle", {"cx": x, "cy": y, "r": 3.2, "fill": fill}, tip)

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float = 11,
        anchor: str = "start",
        rotate: float | None = None,
        bold: bool = False,
        fill: str = INK,
    ) -> None:
        self._add(
            "text",
            {
                "x": x,
                "y": y,
                "font_size": size,
                "text_anchor": anchor,
                "font_weight": "bold" if bold else None,
                "fill": fill,
                "transform": f"rotate({_number(rotate)} {_number(x)} {_number(y)})" if rotate else None,
            },
            body=escape(text),
        )

    def render(self) -> str:
        width, height = math.ceil(self.width), math.ceil(self.height)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family={quoteattr(FONT)}>'
            f'<rect width="100%" height="100%" fill="white"/>' + "".join(self.parts) + "</svg>\n"
        )

    def save(self, path: Path) -> Path:
        """Write the document to ``path`` atomically (tasks.core.atomic)."""
        from tasks.core.atomic import write_text_atomic

        return write_text_atomic(path, self.render())


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


@dataclass(frozen=True)
class Axis:
    """A linear map from data values [low, high] to pixels [start, end] (``end`` < ``start`` for y going up)."""

    low: float
    high: float
    start: float
    end: float

    @classmethod
    def covering(cls, values: Sequence[float], start: float, end: float, *, pad: float = 0.05) -> Axis:
        finite = [v for v in values if math.isfinite(v)]
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
        margin = (high - low) * pad
        return cls(low - margin, high + margin, start, end)

    def __call__(self, value: float) -> float:
        if not math.isfinite(value):
            return math.nan
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)


def label(value: float) -> str:
    """A tick label: whole numbers with thousands separators (20,000, not 2e+04), others to four digits."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e12:
        return f"{int(value):,}"
    return f"{value:.4g}"


# A diverging blue-white-red scale (ColorBrewer RdBu, 7 classes) for values on [-1, 1].
_DIVERGING = ("#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b")


def diverging(position: float) -> str:
    """The colour of ``position`` in [-1, 1] (clipped): blue below 0, white at 0, red above; grey if not finite."""
    if not math.isfinite(position):
        return "#dddddd"
    scaled = (min(max(position, -1.0), 1.0) + 1.0) / 2.0 * (len(_DIVERGING) - 1)
    left = min(int(scaled), len(_DIVERGING) - 2)
    share = scaled - left
    a, b = _DIVERGING[left], _DIVERGING[left + 1]
    mixed = (round(int(a[i : i + 2], 16) * (1 - share) + int(b[i : i + 2], 16) * share) for i in (1, 3, 5))
    return "#" + "".join(f"{c:02x}" for c in mixed)
