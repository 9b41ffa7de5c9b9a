"""A self-contained HTML report: sections of text, tables, metrics and figures, no external files.

Images are inlined as base64 data URIs and the CSS is inline, so the file can be emailed or
archived as is. Everything user-supplied is escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

import base64
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medsight import __version__
from medsight.errors import DataError
from medsight.evaluate.bootstrap import Estimate
from medsight.evaluate.metrics import METRIC_LABELS, metric_label
from medsight.evaluate.plots import figure_to_png_bytes

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class TextBlock:
    text: str
    kind: str = "text"


@dataclass(frozen=True)
class KeyValuesBlock:
    items: list[tuple[str, str]]
    kind: str = "key_values"


@dataclass(frozen=True)
class TableBlock:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    kind: str = "table"


@dataclass(frozen=True)
class ImageBlock:
    png_base64: str
    caption: str = ""
    kind: str = "image"


Block = TextBlock | KeyValuesBlock | TableBlock | ImageBlock


@dataclass
class Section:
    """A titled part of the report holding blocks in the order they were added."""

    title: str
    intro: str = ""
    blocks: list[Block] = field(default_factory=list)

    def add_text(self, text: str) -> None:
        """A paragraph; line breaks are kept."""
        self.blocks.append(TextBlock(str(text)))

    def add_key_values(self, mapping: Mapping[str, object]) -> None:
        """A two-column list of labels and values."""
        self.blocks.append(KeyValuesBlock([(str(k), _cell(v)) for k, v in mapping.items()]))

    def add_table(self, df: pd.DataFrame, caption: str = "") -> None:
        """A DataFrame as a table; a non-default index becomes the first columns."""
        if not isinstance(df.index, pd.RangeIndex):
            df = df.reset_index()
        rows = [[_cell(v) for v in row] for row in df.itertuples(index=False, name=None)]
        self.blocks.append(TableBlock([str(c) for c in df.columns], rows, caption))

    def add_figure(self, fig: Figure, caption: str = "") -> None:
        """A matplotlib figure, inlined as PNG."""
        self.add_image_png(figure_to_png_bytes(fig), caption)

    def add_image_png(self, png_bytes: bytes, caption: str = "") -> None:
        """Already-rendered PNG bytes, inlined."""
        if not bytes(png_bytes[:8]) == _PNG_SIGNATURE:
            raise DataError(
                f"add_image_png needs PNG bytes; got {len(png_bytes)} bytes starting "
                f"{bytes(png_bytes[:8])!r}. Render the image as PNG first."
            )
        self.blocks.append(ImageBlock(base64.b64encode(png_bytes).decode("ascii"), caption))

    def add_metrics(
        self,
        metrics: Mapping[str, Estimate],
        caption: str = "",
        labels: Mapping[str, str] = METRIC_LABELS,
    ) -> None:
        """Metric (human name from ``labels``), value and 95% CI, one row each."""
        rows = [
            [metric_label(name, labels), _number(e.value), _interval(e.lo, e.hi)]
            for name, e in metrics.items()
        ]
        self.blocks.append(TableBlock(["Metric", "Value", "95% CI"], rows, caption))


@dataclass
class Report:
    """A titled sequence of sections rendered to one HTML file."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def add_section(self, title: str, intro: str = "") -> Section:
        """Append a new section and return it for filling."""
        section = Section(title, intro)
        self.sections.append(section)
        return section

    def to_html(self) -> str:
        """The whole report as one HTML document."""
        return _template().render(
            report=self,
            generated_at=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            version=__version__,
        )

    def write(self, path: str | Path) -> Path:
        """Write atomically (temporary file in the same folder, then rename); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        html = self.to_html()
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(html)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    source = files("medsight.evaluate").joinpath("templates", "report.html").read_text("utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.from_string(source)


def _cell(value: object) -> str:
    if isinstance(value, float | np.floating):
        return _number(float(value))
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    return str(value)


def _number(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def _interval(lo: float, hi: float) -> str:
    return "–" if math.isnan(lo) or math.isnan(hi) else f"{lo:.3f} – {hi:.3f}"
