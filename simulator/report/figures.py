"""Matplotlib figures as inline ``<svg>`` text, for a self-contained page that opens offline.

- text stays text (``svg.fonttype`` ``none``): no embedded glyph outlines, no font files;
- no XML prolog, DOCTYPE, metadata block or namespace URL (an ``<svg>`` inside HTML needs none), and
  ``xlink:href`` becomes plain ``href``; the only references are to the figure's own ids
  (``url(#...)``, ``href="#..."``) and, for rasterised layers, ``data:image/png`` URIs;
- ids are prefixed with a digest of the figure, so several plots on one page never share an id, and
  ids nothing refers to are dropped;
- the output is deterministic: the same data gives the same bytes (a fixed ``svg.hashsalt``, no
  date), so a re-rendered report is byte-identical.

Figures are built with :class:`matplotlib.figure.Figure`, never through pyplot's registry of open
figures, so nothing stays open once a plot is returned. :mod:`simulator.report.plots` draws them.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Sequence
from functools import wraps
from html import escape
from typing import TYPE_CHECKING, Any, ParamSpec

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "beacon-fleet",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9.5,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
}
NO_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}
RASTER_DPI = 110

P = ParamSpec("P")


def styled(plot: Callable[P, str]) -> Callable[P, str]:
    """Run a plot function under the report's matplotlib settings (:data:`RC`); global ones are untouched."""

    @wraps(plot)
    def styled(*args: P.args, **kwargs: P.kwargs) -> str:
        with matplotlib.rc_context(RC):
            return plot(*args, **kwargs)

    return styled


def figure(size: tuple[float, float], panels: Sequence[tuple[float, float]], right: float,
            bottom: float = 0.5, top: float = 0.35) -> tuple[Figure, list[Axes]]:
    """A figure with panels side by side, placed in inches (a layout engine would cost more than the plot).

    Args:
        size: Width and height (inches).
        panels: Per panel, left to right: the room on its left (tick labels, inches) and its share of
            the width left over.
        right: Room right of the last panel (an outside legend, inches).
        bottom: Room below the panels (x tick labels and axis label, inches).
        top: Room above the panels (the title, inches).
    """
    width, height = size
    fig = Figure(figsize=size)
    free = width - right - sum(margin for margin, _ in panels)
    shares = sum(share for _, share in panels)
    axes, x = [], 0.0
    for margin, share in panels:
        x += margin
        w = free * share / shares
        axes.append(fig.add_axes((x / width, bottom / height, w / width, (height - bottom - top) / height)))
        x += w
    return fig, axes


def empty(message: str) -> str:
    """The one line shown instead of a plot that has nothing to draw (HTML-escaped)."""
    return f'<p class="empty">{escape(message)}</p>'


_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_NAMESPACES = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_METADATA = re.compile(r"<metadata>.*?</metadata>", re.DOTALL)
_ID = re.compile(r'\s+id="([^"]*)"')
_REFERENCE = re.compile(r'url\(#([^)]+)\)|href="#([^"]+)"')


def to_svg(fig: Figure, label: str) -> str:
    """The figure as an inline ``<svg>`` element (see the module docstring for what is changed)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata=NO_METADATA, dpi=RASTER_DPI)
    text = _PROLOG.sub("", buffer.getvalue(), count=1)
    text = _METADATA.sub("", text)
    text = _NAMESPACES.sub("", text)
    text = text.replace("xlink:href=", "href=")
    text = re.sub(r">\s+<", "><", text)
    text = re.sub(r"\s*\n\s*", " ", text).strip()
    referenced = {a or b for a, b in _REFERENCE.findall(text)}
    prefix = "k" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10] + "-"
    text = _ID.sub(lambda m: f' id="{prefix}{m.group(1)}"' if m.group(1) in referenced else "", text)
    text = _REFERENCE.sub(lambda m: f"url(#{prefix}{m.group(1)})" if m.group(1)
                          else f'href="#{prefix}{m.group(2)}"', text)
    return text.replace("<svg ", f'<svg class="plot" role="img" aria-label="{escape(label, quote=True)}" ', 1)
