"""A small HTML report builder in the style of MNE-Python's ``Report``.

A :class:`Report` collects items (figures, tables, key–value lists, notes, code) with
``add_*`` methods, groups them into sections, and renders one self-contained HTML
file through a Jinja template: figures are embedded as base64 PNG, the style sheet is
inlined, and nothing is fetched from the network, so the file opens offline and can be
e-mailed or archived as is.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import matplotlib.pyplot as plt
>>> rep = Report(title="Example")
>>> fig, ax = plt.subplots()
>>> _ = ax.plot([0, 1], [0, 1])
>>> rep.add_figure(fig, title="A line", section="Figures")
>>> rep.add_key_values({"n": 3}, title="Counts", section="Figures")
>>> html = rep.render()
>>> "data:image/png;base64," in html
True
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from cdrscreen.core.errors import CdrscreenError
from cdrscreen.core.io import write_text

#: Plain-language caution printed at the top of every report.
RESEARCH_CAUTION = (
    "This report comes from a research tool. It is not a diagnosis and must not be used "
    "on its own to make clinical decisions. The model was trained and checked on a small "
    "cohort, its accuracy is uncertain (see the confidence intervals), and a prediction "
    "can be wrong for reasons unrelated to cognition (camera angle, lighting, hearing, "
    "language, mood, medication). Only a qualified clinician, using a full assessment, can "
    "rate dementia severity."
)

_env: jinja2.Environment | None = None


def _environment() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = jinja2.Environment(
            loader=jinja2.PackageLoader("cdrscreen.reports", "templates"),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _env


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "section"


def figure_to_base64(fig: Any, dpi: int = 96) -> tuple[str, int, int]:
    """Render a matplotlib figure to base64 PNG and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; it is closed afterwards to free memory.
    dpi : int
        Resolution of the embedded image.

    Returns
    -------
    data : str
        Base64 text of the PNG.
    width, height : int
        Pixel size of the PNG.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
        w, h = fig.canvas.get_width_height()
        scale = dpi / fig.dpi
        width, height = round(w * scale), round(h * scale)
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii"), width, height


@dataclass
class _Item:
    kind: str
    title: str
    section: str
    caption: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class Report:
    """Collect report items and render them into one self-contained HTML file.

    Parameters
    ----------
    title : str
        Report title (also the HTML ``<title>``).
    subtitle : str
        One line under the title (e.g. the run and protocol).
    caution : str or None
        Plain-language caution shown in a box at the top; ``None`` leaves it out.
    banner : str or None
        Optional highlighted line (e.g. "synthetic demo data").
    dpi : int
        Resolution of embedded figures.
    """

    def __init__(
        self,
        title: str,
        subtitle: str = "",
        caution: str | None = RESEARCH_CAUTION,
        banner: str | None = None,
        dpi: int = 96,
    ) -> None:
        self.title = title
        self.subtitle = subtitle
        self.caution = caution
        self.banner = banner
        self.dpi = dpi
        self._items: list[_Item] = []
        self._footer: dict[str, str] = {}

    # ------------------------------------------------------------------ add_*
    def add_figure(
        self,
        fig: Any,
        title: str,
        caption: str = "",
        section: str = "Figures",
        alt: str | None = None,
    ) -> None:
        """Add a matplotlib figure, embedded as a base64 PNG (the figure is closed)."""
        data, width, height = figure_to_base64(fig, dpi=self.dpi)
        self._items.append(
            _Item("figure", title, section, caption,
                  {"src": f"data:image/png;base64,{data}", "width": width, "height": height,
                   "alt": alt or title})
        )

    def add_png(self, png: bytes, width: int, height: int, title: str, caption: str = "",
                section: str = "Figures", alt: str | None = None) -> None:
        """Add an already rendered PNG image (``width`` x ``height`` pixels)."""
        data = base64.b64encode(png).decode("ascii")
        self._items.append(
            _Item("figure", title, section, caption,
                  {"src": f"data:image/png;base64,{data}", "width": int(width), "height": int(height),
                   "alt": alt or title})
        )

    def add_figure_row(
        self,
        figs: list[Any],
        title: str,
        labels: list[str] | None = None,
        caption: str = "",
        section: str = "Figures",
    ) -> None:
        """Add several small figures side by side (they wrap on narrow pages)."""
        labels = labels or [""] * len(figs)
        if len(labels) != len(figs):
            raise CdrscreenError(f"add_figure_row: {len(figs)} figures but {len(labels)} labels")
        panels = []
        for fig, lab in zip(figs, labels, strict=True):
            data, width, height = figure_to_base64(fig, dpi=self.dpi)
            panels.append({"src": f"data:image/png;base64,{data}", "width": width, "height": height,
                           "alt": lab or title, "label": lab})
        self._items.append(_Item("figrow", title, section, caption, {"panels": panels}))

    def add_table(
        self,
        table: pd.DataFrame,
        title: str,
        caption: str = "",
        section: str = "Tables",
        index: bool = False,
        float_format: str = "{:.3g}",
    ) -> None:
        """Add a table; numbers are formatted with ``float_format``, NaN shown as an en dash."""
        df = table.reset_index() if index else table
        header = [str(c) for c in df.columns]
        rows = [[_fmt(v, float_format) for v in rec] for rec in df.itertuples(index=False)]
        numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
        self._items.append(
            _Item("table", title, section, caption,
                  {"header": header, "rows": rows, "numeric": numeric})
        )

    def add_key_values(
        self,
        values: dict[str, Any],
        title: str,
        caption: str = "",
        section: str = "Summary",
        float_format: str = "{:.3g}",
    ) -> None:
        """Add a two-column list of labelled values."""
        pairs = [(str(k), _fmt(v, float_format)) for k, v in values.items()]
        self._items.append(_Item("keyvalues", title, section, caption, {"pairs": pairs}))

    def add_text(self, text: str, title: str = "", section: str = "Notes", level: str = "info") -> None:
        """Add a paragraph of plain text (``level``: ``info``, ``warning`` or ``plain``)."""
        if level not in {"info", "warning", "plain"}:
            raise CdrscreenError(f"unknown text level {level!r}: use info, warning or plain")
        paras = [p.strip() for p in str(text).split("\n\n") if p.strip()]
        self._items.append(_Item("text", title, section, "", {"paras": paras, "level": level}))

    def add_code(self, code: str, title: str, section: str = "Provenance", caption: str = "") -> None:
        """Add preformatted text (protocol YAML, versions); long lines wrap."""
        self._items.append(_Item("code", title, section, caption, {"code": code}))

    def add_metric_cards(self, cards: list[dict[str, str]], title: str, section: str = "Summary",
                         caption: str = "") -> None:
        """Add a row of headline numbers: each card has ``label``, ``value`` and ``detail``."""
        clean = [{"label": str(c.get("label", "")), "value": str(c.get("value", "")),
                  "detail": str(c.get("detail", ""))} for c in cards]
        self._items.append(_Item("cards", title, section, caption, {"cards": clean}))

    def set_footer(self, **fields: str) -> None:
        """Set provenance shown in the footer (e.g. ``generated``, ``version``, ``run``)."""
        self._footer.update({k: str(v) for k, v in fields.items()})

    # ------------------------------------------------------------------ output
    @property
    def sections(self) -> list[str]:
        """Section names in order of first use."""
        seen: list[str] = []
        for it in self._items:
            if it.section not in seen:
                seen.append(it.section)
        return seen

    def __len__(self) -> int:
        return len(self._items)

    def render(self) -> str:
        """Return the complete HTML document as a string."""
        sections = []
        for name in self.sections:
            items = [it for it in self._items if it.section == name]
            sections.append({"name": name, "id": _slug(name), "items": items})
        return _environment().get_template("report.html").render(
            title=self.title, subtitle=self.subtitle, caution=self.caution, banner=self.banner,
            sections=sections, footer=self._footer,
        )

    def save(self, fname: str | PathLike[str], overwrite: bool = True) -> Path:
        """Write the HTML atomically to ``fname`` and return its path."""
        path = Path(fname)
        if path.exists() and not overwrite:
            raise CdrscreenError(f"{path}: already exists (pass overwrite=True to replace it)")
        return write_text(path, self.render())


def _fmt(v: Any, float_format: str) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float | int) and not isinstance(v, bool):
        if isinstance(v, float) and v != v:  # NaN
            return "–"
        if isinstance(v, int) or float(v).is_integer() and abs(v) < 1e6:
            return str(int(v))
        return float_format.format(v)
    try:
        import numpy as np

        if isinstance(v, np.integer):
            return str(int(v))
        if isinstance(v, np.floating):
            return _fmt(float(v), float_format)
    except ImportError:  # pragma: no cover
        pass
    return str(v)
