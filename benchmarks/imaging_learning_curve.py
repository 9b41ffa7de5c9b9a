"""Learning curve of an image recipe: held-out error against training-set size, and a power law.

Run from the project root in .venv, after ``benchmarks/imaging_cv.py`` has run the recipe at
several ``--train-fraction`` values (one folder per fraction and fold seed)::

    python benchmarks/imaging_learning_curve.py --target-accuracy 0.88 --plot curve.png \\
        --runs runs/f0.25_s21 runs/f0.5_s21 runs/f1.0_s21 runs/f0.25_s22 runs/f0.5_s22 ...

Every fold is a point (images trained on, held-out error = 1 - accuracy), for all held-out
images and for those without a near-duplicate in the fold's training data (novel images). A
power law ``error = a * n ** -b`` is fitted by least squares in log-log over all points, and
resampling folds within each folder (2,000 times) gives 95% percentile intervals for ``b`` and
for the size at which the fitted law reaches the target accuracy. Beyond the sizes that were run
this is an extrapolation: it says how far the target lies along the recipe's own trend, not that
more images of the same kind would reach it. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # run as a script or imported by the tests

from imaging_cv import summarise

ACCURACIES = ("accuracy", "accuracy_novel")  # each fitted as an error, 1 - accuracy
RESAMPLES = 2000


@dataclass(frozen=True)
class PowerLaw:
    """``error = a * n ** -b``."""

    a: float
    b: float

    def error(self, n: float) -> float:
        return self.a * n**-self.b

    def size_for(self, error: float) -> float:
        """Training images at which the law reaches ``error`` (inf when it never falls to it)."""
        if self.b <= 0:
            return math.inf
        exponent = (math.log(self.a) - math.log(error)) / self.b  # in logs: a slope near 0
        return math.exp(exponent) if exponent < 700 else math.inf  # would overflow a float


def fit_power_law(sizes: np.ndarray, errors: np.ndarray) -> PowerLaw:
    """Least squares of log(error) on log(n); errors of 0 are floored at 1e-6."""
    slope, intercept = np.polyfit(np.log(sizes), np.log(np.maximum(errors, 1e-6)), 1)
    return PowerLaw(a=float(np.exp(intercept)), b=float(-slope))


def _interval(values: list[float]) -> list[float]:
    # "nearest" keeps an infinite size (a resample whose law does not fall) from becoming NaN
    low, high = np.percentile(np.asarray(values), [2.5, 97.5], method="nearest")
    return [float(low), float(high)]


def fit_with_intervals(
    groups: list[tuple[np.ndarray, np.ndarray]], target_error: float, seed: int = 0
) -> dict[str, Any]:
    """The law fitted on all points of ``groups`` (per folder: sizes, errors), and 95% intervals
    from resampling each folder's folds with replacement."""
    sizes = np.concatenate([n for n, _ in groups])
    errors = np.concatenate([e for _, e in groups])
    law = fit_power_law(sizes, errors)
    rng = np.random.default_rng(seed)
    exponents, targets = [], []
    for _ in range(RESAMPLES):
        picks = [rng.integers(0, len(n), len(n)) for n, _ in groups]
        resampled = fit_power_law(
            np.concatenate([n[p] for (n, _), p in zip(groups, picks, strict=True)]),
            np.concatenate([e[p] for (_, e), p in zip(groups, picks, strict=True)]),
        )
        exponents.append(resampled.b)
        targets.append(resampled.size_for(target_error))
    target = law.size_for(target_error)
    return {
        "a": law.a,
        "b": law.b,
        "b_ci": _interval(exponents),
        "n_at_target": None if math.isinf(target) else target,
        "n_at_target_ci": [None if math.isinf(v) else v for v in _interval(targets)],
    }


def fold_points(folder: Path, members: int | None = None) -> dict[str, np.ndarray]:
    """Per fold of one imaging_cv folder: images trained on, and each accuracy's error (of the
    first ``members`` members' ensemble, at the argmax, when given)."""
    rows = summarise(folder, members)["folds"]
    if any(row.get("n_train") is None for row in rows):
        raise SystemExit(f"{folder}: fold files without n_train (re-run imaging_cv.py)")
    points = {"n": np.array([row["n_train"] for row in rows], dtype=float)}
    points |= {key: np.array([1.0 - row[key] for row in rows]) for key in ACCURACIES}
    points["auroc"] = np.array([row["auroc"] for row in rows])
    return points


def learning_curve(
    folders: list[Path],
    target_accuracy: float,
    plot: Path | None = None,
    members: int | None = None,
) -> dict[str, Any]:
    """Mean figures per training size and the fitted laws (see the module docstring)."""
    points = [fold_points(folder, members) for folder in folders]
    by_size: dict[int, list[dict[str, np.ndarray]]] = {}
    for folder_points in points:
        by_size.setdefault(round(float(folder_points["n"].mean())), []).append(folder_points)
    sizes = []
    for size, group in sorted(by_size.items()):
        pooled = {k: np.concatenate([p[k] for p in group]) for k in group[0]}
        sizes.append(
            {
                "n_train": size,
                "folds": len(pooled["n"]),
                "auroc": float(pooled["auroc"].mean()),
                **{key: float(1.0 - pooled[key].mean()) for key in ACCURACIES},
            }
        )
    if len(by_size) < 2:
        raise SystemExit("a learning curve needs runs at two or more training sizes")
    target_error = 1.0 - target_accuracy
    fits = {
        key: fit_with_intervals([(p["n"], p[key]) for p in points], target_error)
        for key in ACCURACIES
    }
    for row in sizes:  # the laws' accuracies at the sizes run: how well they fit
        for key, fit in fits.items():
            row[f"{key}_fitted"] = 1.0 - PowerLaw(fit["a"], fit["b"]).error(row["n_train"])
    if plot is not None:
        draw(points, fits, target_accuracy, plot, sizes)
    return {
        "benchmark": "imaging-learning-curve",
        "runs": [str(folder) for folder in folders],
        "members": members,
        "target_accuracy": target_accuracy,
        "sizes": sizes,
        "fits": fits,
        "note": (
            "a power law without a floor: where the observed gains shrink faster than the law's "
            "(compare *_fitted with the means), its size at the target is optimistic"
        ),
    }


def draw(
    points: list[dict[str, np.ndarray]],
    fits: dict[str, dict[str, Any]],
    target_accuracy: float,
    path: Path,
    size_rows: list[dict[str, Any]],
) -> None:
    """Held-out error against training images (log-log): folds (dots), the mean at each size
    (diamonds) and the fitted laws."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    sizes = np.concatenate([p["n"] for p in points])
    reach = [fit["n_at_target"] or 0 for fit in fits.values()]
    span = np.geomspace(sizes.min(), max(sizes.max(), min(max(reach), 100 * sizes.max())), 100)
    for (key, fit), colour in zip(fits.items(), ("tab:blue", "tab:orange"), strict=False):
        errors = np.concatenate([p[key] for p in points])
        label = "all held-out images" if key == "accuracy" else "novel images"
        axes.scatter(sizes, errors, s=12, alpha=0.4, color=colour)
        mean_sizes = [row["n_train"] for row in size_rows]
        mean_errors = [1.0 - row[key] for row in size_rows]
        axes.scatter(mean_sizes, mean_errors, s=60, marker="D", color=colour, edgecolor="black")
        law = PowerLaw(fit["a"], fit["b"])
        axes.plot(span, [law.error(n) for n in span], color=colour, label=f"{label}, b={law.b:.2f}")
    axes.axhline(1.0 - target_accuracy, color="grey", linestyle="--", label="target error")
    axes.set_xscale("log")
    axes.set_yscale("log")
    for axis in (axes.xaxis, axes.yaxis):  # plain numbers, not powers of ten
        axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # they would overlap
    axes.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes.set_title("Held-out error by training size; fitted power law", fontsize=10)
    axes.set_xlabel("training images")
    axes.set_ylabel("held-out error (1 - accuracy)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="imaging_cv folders")
    parser.add_argument("--target-accuracy", type=float, default=0.88)
    parser.add_argument("--plot", type=Path, help="write the curve as a PNG here")
    parser.add_argument("--members", type=int, help="the first N members only (the networks)")
    args = parser.parse_args()
    result = learning_curve(args.runs, args.target_accuracy, args.plot, args.members)
    for row in result["sizes"]:
        print(
            f"n {row['n_train']:>5}: accuracy {row['accuracy']:.3f}, novel "
            f"{row['accuracy_novel']:.3f}, AUROC {row['auroc']:.3f} ({row['folds']} folds)",
            file=sys.stderr,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
