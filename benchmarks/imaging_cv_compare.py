"""Judge a candidate image recipe against the default on the same cross-validation folds.

Run from the project root in .venv, after ``benchmarks/imaging_cv.py`` has written the fold files
of both recipes on the same fold seeds (one folder per recipe and fold seed, given in the same
order)::

    python benchmarks/imaging_cv_compare.py --base runs/B19 runs/B20 --candidate runs/M19 runs/M20

The rule is the one the project writes down before its runs (docs/architecture.md): adopt when
the pooled accuracy rises by at least ``--accuracy-gain`` with AUROC no more than
``--auroc-margin`` lower, or the pooled AUROC rises by at least ``--auroc-gain`` with accuracy no
more than ``--accuracy-margin`` lower, and the metric that carries the gain is higher on every
fold set. Pooled figures are means over all folds. Novel-image and networks-alone figures are
reported beside it and do not decide. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # run as a script or imported by the tests

from imaging_cv import summarise

METRICS = ("auroc", "accuracy", "auroc_novel", "accuracy_novel")


@dataclass(frozen=True)
class Rule:
    """Gains and non-inferiority margins of the adoption rule (pooled means over folds)."""

    accuracy_gain: float = 0.010
    auroc_margin: float = 0.005
    auroc_gain: float = 0.005
    accuracy_margin: float = 0.005

    def verdict(self, delta: dict[str, float], per_set: list[dict[str, float]]) -> dict[str, Any]:
        """Which route (if any) adopts, from pooled deltas and each fold set's deltas."""

        def carries(metric: str, gain: float, other: str, margin: float) -> bool:
            return (
                delta[metric] >= gain
                and delta[other] >= -margin
                and all(row[metric] > 0 for row in per_set)
            )

        routes = {
            "accuracy": carries("accuracy", self.accuracy_gain, "auroc", self.auroc_margin),
            "auroc": carries("auroc", self.auroc_gain, "accuracy", self.accuracy_margin),
        }
        carried = [metric for metric, ok in routes.items() if ok]
        return {"adopt": bool(carried), "carried_by": carried, "rule": asdict(self)}


def _fold_rows(folder: Path, members: int | None) -> dict[str, dict[str, float]]:
    summary = summarise(folder, members)
    return {row["fold"]: row for row in summary["folds"]}


def _networks(folder: Path) -> int:
    first = sorted(folder.glob("fold*.npz"))[0]
    return len(np.load(first)["member_train_seconds"])


def _check_pairing(base: Path, candidate: Path) -> list[str]:
    """The fold names both folders hold, with the same held-out labels in each."""
    names = sorted(p.stem for p in base.glob("fold*.npz"))
    other = sorted(p.stem for p in candidate.glob("fold*.npz"))
    if not names or names != other:
        raise SystemExit(f"{base} has folds {names}, {candidate} has {other}: not the same folds")
    for name in names:
        a = np.load(base / f"{name}.npz")["labels"]
        b = np.load(candidate / f"{name}.npz")["labels"]
        if a.shape != b.shape or not (a == b).all():
            raise SystemExit(f"{name}: {base} and {candidate} hold different held-out images")
    return names


def _means(rows: list[dict[str, float]]) -> dict[str, float]:
    return {m: statistics.fmean(r[m] for r in rows) for m in METRICS if all(m in r for r in rows)}


def compare(base: list[Path], candidate: list[Path], rule: Rule) -> dict[str, Any]:
    """Per fold set and pooled figures of both recipes, their differences and the verdict."""
    if len(base) != len(candidate):
        raise SystemExit("give one --candidate folder per --base folder, in the same order")
    sets, pooled = [], {"base": [], "candidate": [], "base_networks": [], "candidate_networks": []}
    for b, c in zip(base, candidate, strict=True):
        names = _check_pairing(b, c)
        rows = {
            "base": _fold_rows(b, None),
            "candidate": _fold_rows(c, None),
            "base_networks": _fold_rows(b, _networks(b)),
            "candidate_networks": _fold_rows(c, _networks(c)),
        }
        entry: dict[str, Any] = {"base_folder": str(b), "candidate_folder": str(c)}
        for key, by_fold in rows.items():
            chosen = [by_fold[name] for name in names]
            pooled[key].extend(chosen)
            entry[key] = _means(chosen)
        entry["delta"] = {m: entry["candidate"][m] - entry["base"][m] for m in entry["base"]}
        sets.append(entry)
    means = {key: _means(rows) for key, rows in pooled.items()}
    delta = {m: means["candidate"][m] - means["base"][m] for m in means["base"]}
    return {
        "benchmark": "imaging-cv-compare",
        "folds": len(pooled["base"]),
        "fold_sets": sets,
        "pooled": means,
        "delta": delta,
        **rule.verdict(delta, [s["delta"] for s in sets]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, nargs="+", required=True)
    parser.add_argument("--candidate", type=Path, nargs="+", required=True)
    for field in fields(Rule):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=float, default=field.default)
    args = parser.parse_args()
    rule = Rule(**{field.name: getattr(args, field.name) for field in fields(Rule)})
    result = compare(args.base, args.candidate, rule)
    for entry in result["fold_sets"]:
        print(
            f"{entry['base_folder']} -> {entry['candidate_folder']}: "
            + ", ".join(f"{m} {v:+.4f}" for m, v in entry["delta"].items()),
            file=sys.stderr,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
