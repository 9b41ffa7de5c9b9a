"""Tabular benchmark: repeated cross-validation of the default pipeline and the baseline.

Run from the project root in .venv::

    python benchmarks/tabular.py                       # wdbc, cleveland, heart_failure
    python benchmarks/tabular.py --dataset cleveland
    python benchmarks/tabular.py --data FILE.csv --target COL [--exclude COL ...]

Progress goes to stderr; the last line of stdout is one JSON object ``{"results": [...]}``.
Datasets under ../shared/data are skipped with a message when that folder is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from medsight.config import DataConfig, EvaluationConfig, ModelConfig, TrainConfig
from medsight.demo import TARGET as WDBC_TARGET
from medsight.demo import wdbc_frame
from medsight.tasks.tabular import BASELINE, baseline_cleaning, evaluate_model, prepare_table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = {
    "wdbc": {"target": WDBC_TARGET, "positive_class": "malignant", "exclude": []},
    "cleveland": {
        "path": SHARED / "heart_disease" / "processed.cleveland.csv",
        "target": "output",
        "exclude": [],
    },
    "heart_failure": {
        "path": SHARED / "heart_failure" / "heart_failure_clinical_records_dataset.csv",
        "target": "DEATH_EVENT",
        # follow-up time is only known after the outcome: it leaks it
        "exclude": ["time"],
    },
}


def benchmark(
    name: str, frame: pd.DataFrame, data: DataConfig, evaluation: EvaluationConfig, seed: int
) -> list[dict]:
    """Cross-validate the default pipeline and the baseline on the same folds."""
    config = TrainConfig(data=data, evaluation=evaluation, seed=seed)
    prepared = prepare_table(config, frame)
    rows = []
    candidates = (
        ("default", ModelConfig(), config.cleaning),
        ("baseline", BASELINE, baseline_cleaning(config)),
    )
    for label, model, cleaning in candidates:
        start = time.perf_counter()
        result = evaluate_model(label, prepared, model, config, cleaning=cleaning)
        seconds = time.perf_counter() - start
        m = result.metrics
        rows.append(
            {
                "dataset": name,
                "model": label,
                "auroc": round(m["auroc"].value, 4),
                "auroc_ci": [round(m["auroc"].lo, 4), round(m["auroc"].hi, 4)],
                "accuracy": round(m["accuracy"].value, 4),
                "sensitivity": round(m["sensitivity"].value, 4),
                "specificity": round(m["specificity"].value, 4),
                "seconds": round(seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), action="append")
    parser.add_argument("--data", type=Path, help="any CSV or Parquet table")
    parser.add_argument("--target", help="target column of --data")
    parser.add_argument("--exclude", action="append", default=[], help="column to leave out")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    evaluation = EvaluationConfig(
        repeats=args.repeats, folds=args.folds, n_bootstrap=args.n_bootstrap
    )

    jobs: list[tuple[str, pd.DataFrame, DataConfig]] = []
    if args.data is not None:
        if not args.target:
            parser.error("--data needs --target")
        from medsight.io.tabular import read_table

        data = DataConfig(path=args.data, target=args.target, exclude=args.exclude)
        jobs.append((args.data.stem, read_table(args.data), data))
    for name in args.dataset or ([] if args.data else list(DATASETS)):
        spec = dict(DATASETS[name])
        path = spec.pop("path", None)
        if path is None:
            frame = wdbc_frame()
        elif not path.exists():
            print(f"skipping {name}: {path} not found (needs ../shared/data)", file=sys.stderr)
            continue
        else:
            frame = pd.read_csv(path)
        jobs.append((name, frame, DataConfig(path=path, **spec)))

    results = []
    for name, frame, data in jobs:
        print(f"== {name}: {len(frame)} rows", file=sys.stderr, flush=True)
        results.extend(benchmark(name, frame, data, evaluation, args.seed))
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
