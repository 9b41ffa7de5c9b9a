"""``medsight demo``: breast-tumour diagnosis on WDBC, end to end, with no network.

WDBC (Wisconsin Diagnostic Breast Cancer, 569 fine-needle aspirates, 212 malignant) ships inside
scikit-learn. Three patients are held out before training and predicted at the end as "new"
patients, so the demo never explains a prediction on a row the model learnt from.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console
from sklearn.datasets import load_breast_cancer

from medsight.config import DataConfig, EvaluationConfig, TrainConfig
from medsight.runs import write_text_atomic

if TYPE_CHECKING:
    from medsight.tasks.tabular import TabularRunResult

TARGET = "diagnosis"
HELD_OUT = 3


def wdbc_frame() -> pd.DataFrame:
    """WDBC as a table with a readable ``diagnosis`` column (malignant / benign)."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame[TARGET] = data.target.map({0: "malignant", 1: "benign"})
    return frame


def write_demo_data(folder: Path, seed: int = 0) -> tuple[Path, Path, pd.Series]:
    """Training CSV, a CSV of held-out patients without their diagnosis, and their true labels."""
    frame = wdbc_frame()
    held_out = frame.groupby(TARGET, group_keys=False).sample(n=1, random_state=seed)
    held_out = pd.concat(
        [held_out, frame.drop(held_out.index).sample(n=HELD_OUT - 2, random_state=seed)]
    )
    training = frame.drop(held_out.index)
    train_path = write_text_atomic(folder / "wdbc_train.csv", training.to_csv(index=False))
    new_path = write_text_atomic(
        folder / "wdbc_new_patients.csv", held_out.drop(columns=TARGET).to_csv(index=False)
    )
    return train_path, new_path, held_out[TARGET].reset_index(drop=True)


def run_demo(
    console: Console, output: Path, *, repeats: int = 2, folds: int = 5
) -> TabularRunResult:
    """Train, evaluate, bundle and report the WDBC model, then predict three new patients.

    Returns the run (``bundle_path``, ``report_path``, ...) for the service part of the demo.
    """
    from medsight.cli.render import print_predictions, print_run
    from medsight.cli.runner import train_with_progress
    from medsight.tasks.external import load_bundle

    console.rule("[bold]medsight demo: breast-tumour diagnosis (WDBC)")
    train_path, new_path, truth = write_demo_data(Path(output) / "demo-data")
    console.print(f"Data: {train_path} (held-out new patients: {new_path})")
    config = TrainConfig(
        name="wdbc-demo",
        data=DataConfig(path=train_path, target=TARGET, positive_class="malignant"),
        evaluation=EvaluationConfig(repeats=repeats, folds=folds),
        output_dir=Path(output),
    )
    result = train_with_progress(console, config)
    print_run(console, result)

    console.rule("[bold]New patients")
    bundle = load_bundle(result.bundle_path)
    predictions = bundle.predict(pd.read_csv(new_path), where=str(new_path))
    print_predictions(console, predictions)
    agreement = ", ".join(
        f"row {p['row']}: predicted {p['prediction']}, actual {actual}"
        for p, actual in zip(predictions, truth, strict=True)
    )
    console.print(agreement)
    console.print(
        f"\nOpen the report: [bold]{result.report_path.resolve()}[/bold]\n"
        f"Predict your own rows: medsight predict {result.bundle_path} {new_path}"
    )
    return result
