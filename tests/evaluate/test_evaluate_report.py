from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from medsight import __version__
from medsight.errors import DataError
from medsight.evaluate import (
    Estimate,
    Report,
    figure_to_png_base64,
    figure_to_png_bytes,
    plot_calibration,
    plot_confusion_matrix,
    plot_pr,
    plot_roc,
    plot_roc_per_class,
    save_figure,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    return y, np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)


def test_plots_return_figures_with_png(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    repeats = np.vstack([p, p[::-1]])
    figures = [
        plot_roc(y, {"model": repeats, "baseline": np.full(y.size, 0.5)}),
        plot_roc(y, p, label="logistic"),
        plot_pr(y, p),
        plot_calibration(y, repeats, n_bins=8),
        plot_confusion_matrix(y, (p >= 0.5).astype(int), ["healthy", "disease"]),
    ]
    for figure in figures:
        assert isinstance(figure, Figure)
        png = figure_to_png_bytes(figure)
        assert png.startswith(PNG) and len(png) > 5000
    legend = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert any("repeat 1 of 2" in text and "AUROC" in text for text in legend)
    assert base64.b64decode(figure_to_png_base64(figures[2])).startswith(PNG)


def test_save_figure_and_bad_confusion_input(tmp_path: Path) -> None:
    figure = plot_confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1], ["a", "b", "c"])
    path = save_figure(figure, tmp_path / "cm.png")
    assert path.read_bytes().startswith(PNG)
    with pytest.raises(DataError):
        plot_confusion_matrix([0, 1, 2], [0, 1, 2], ["a", "b"])
    with pytest.raises(DataError):
        plot_roc([1, 1, 1], [0.2, 0.4, 0.9])


def _report(data: tuple[np.ndarray, np.ndarray]) -> Report:
    y, p = data
    report = Report(title="Sepsis <script>alert(1)</script> model", subtitle="synthetic")
    summary = report.add_section("Summary", "All figures are cross-validated.")
    summary.add_key_values({"Rows": 200, "AUROC": Estimate(0.91, 0.88, 0.94)})
    summary.add_text("line one\n<script>alert('x')</script>")
    metrics = report.add_section("Performance")
    metrics.add_metrics(
        {"auroc": Estimate(0.912, 0.881, 0.94), "flu/ppv": Estimate(0.5, float("nan"), 0.6)},
        caption="Cross-validated",
    )
    metrics.add_table(pd.DataFrame({"level": ["F", "M"], "auroc": [0.9, np.nan]}), caption="Sub")
    metrics.add_figure(plot_roc(y, p), caption="ROC curve")
    metrics.add_image_png(figure_to_png_bytes(plot_pr(y, p)), caption="PR")
    return report


def test_report_html_is_self_contained_and_escaped(data: tuple[np.ndarray, np.ndarray]) -> None:
    html = _report(data).to_html()
    for title in ("Summary", "Performance", "ROC curve", "Cross-validated"):
        assert title in html
    assert html.count("data:image/png;base64,") == 2
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)
    assert "AUROC" in html and "0.912" in html and "0.881 – 0.940" in html
    assert "flu: Precision (PPV)" in html
    assert f"medsight {__version__}" in html


def test_report_write_is_atomic(data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    written = _report(data).write(target)
    assert written == target
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temp file left


def test_add_image_png_rejects_other_bytes() -> None:
    section = Report("t").add_section("s")
    with pytest.raises(DataError):
        section.add_image_png(b"GIF89a....")


def test_roc_per_class_draws_each_column_and_marks_operating_points() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((120, 3)) < [0.3, 0.5, 0.0]).astype(int)  # the third never present
    p = np.clip(0.4 * y + rng.random((120, 3)) * 0.6, 0, 1)
    figure = plot_roc_per_class(y, p, ["effusion", "mass", "hernia"], [0.5, 0.4, 0.5])
    axis = figure.axes[0]
    labels = [line.get_label() for line in axis.get_lines()]
    assert labels[0].startswith("effusion (") and any(x.startswith("mass (") for x in labels)
    assert not any(x.startswith("hernia (") for x in labels)  # no curve without positives
    assert "no curve without both kinds of image: hernia" in axis.get_xlabel()
    dots = [line for line in axis.get_lines() if line.get_marker() == "o"]
    called = p[:, 0] >= 0.5
    assert len(dots) == 2
    assert dots[0].get_xdata()[0] == pytest.approx(called[y[:, 0] == 0].mean())
    assert dots[0].get_ydata()[0] == pytest.approx(called[y[:, 0] == 1].mean())
    assert figure_to_png_bytes(figure).startswith(b"\x89PNG")
    with pytest.raises(DataError, match="K names"):
        plot_roc_per_class(y, p, ["effusion", "mass"])
