"""The ``medsight`` command line: a thin layer over the Python API.

Errors a user can fix (:class:`MedsightError`) are printed as one line on stderr with exit code 2
and no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from medsight.errors import MedsightError

app = typer.Typer(
    name="medsight",
    help="Local-first diagnosis support: train, evaluate, explain and serve clinical models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Inspect data before training.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
errors = Console(stderr=True)

OptionalPath = Annotated[Path | None, typer.Option()]


@data_app.command("check")
def data_check(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet table.")],
    target: Annotated[
        str | None, typer.Option(help="Target column (enables class and leakage checks).")
    ] = None,
    patient_id: Annotated[str | None, typer.Option(help="Patient id column.")] = None,
    test: Annotated[
        Path | None, typer.Option(help="A test table: reports patients in both.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON.")
    ] = None,
) -> None:
    """Quality report: missing values, constant and duplicate columns and rows, ranges, leakage."""
    from medsight.cli.render import print_quality
    from medsight.data.quality import quality_report
    from medsight.data.schema import infer_schema
    from medsight.io.tabular import read_table

    frame = read_table(file)
    schema = infer_schema(frame, target, patient_id=patient_id) if target else None
    test_frame = read_table(test) if test else None
    report = quality_report(frame, schema, test_frame=test_frame)
    print_quality(console, file, report)
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2, default=str))
        console.print(f"JSON report: {json_out}")


@app.command()
def train(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML run config.")] = None,
    data: Annotated[Path | None, typer.Option(help="CSV or Parquet table.")] = None,
    target: Annotated[str | None, typer.Option(help="Target column.")] = None,
    patient_id: Annotated[str | None, typer.Option(help="Patient id column (CV groups).")] = None,
    positive_class: Annotated[
        str | None, typer.Option(help="Which target value is positive.")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Column to leave out (repeatable).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Registered model name (see `medsight models`).")
    ] = None,
    folds: Annotated[int | None, typer.Option(help="Cross-validation folds.")] = None,
    repeats: Annotated[int | None, typer.Option(help="Cross-validation repeats.")] = None,
    threshold: Annotated[str | None, typer.Option(help="fixed, youden or sensitivity.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name.")] = None,
    output: Annotated[Path | None, typer.Option(help="Folder for run folders.")] = None,
) -> None:
    """Cross-validate, fit the final model, write the bundle and the HTML report."""
    from medsight.cli.render import print_run
    from medsight.cli.runner import resolve_train_config, train_with_progress

    overrides = {
        "data.path": data,
        "data.target": target,
        "data.patient_id": patient_id,
        "data.positive_class": positive_class,
        "data.exclude": exclude or None,
        "model.name": model,
        "evaluation.folds": folds,
        "evaluation.repeats": repeats,
        "evaluation.threshold": threshold,
        "seed": seed,
        "name": name,
        "output_dir": output,
    }
    run_config = resolve_train_config(config, overrides)
    result = train_with_progress(console, run_config)
    print_run(console, result)


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder (or its bundle).")],
    data: Annotated[
        Path | None, typer.Option(help="Labelled table for external validation.")
    ] = None,
    n_bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
) -> None:
    """Show a run's cross-validated metrics, or validate its bundle on new labelled data."""
    from medsight.cli.render import print_metrics
    from medsight.tasks.external import external_validation, load_run_metrics

    if data is None:
        metrics, title = load_run_metrics(run)
        print_metrics(console, metrics, title)
        return
    outcome = external_validation(run, data, n_bootstrap=n_bootstrap)
    print_metrics(console, outcome.metrics, f"External validation on {data.name}")
    console.print(f"Report: [bold]{outcome.report_path}[/bold]")


@app.command()
def predict(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder (or a run folder).")],
    input: Annotated[Path, typer.Argument(help="CSV or Parquet table of patients.")],
    output: Annotated[Path | None, typer.Option(help="Write results as .json or .csv.")] = None,
    explain: Annotated[bool, typer.Option(help="Add top SHAP contributions.")] = True,
    top: Annotated[int, typer.Option(help="Contributions per patient.")] = 5,
) -> None:
    """Predict each row, with probability, label and the columns that drove it."""
    from medsight.cli.render import print_predictions
    from medsight.io.tabular import read_table
    from medsight.tasks.external import load_bundle, write_predictions

    loaded = load_bundle(bundle)
    frame = read_table(input)
    results = loaded.predict(frame, explain=explain, top_k=top, where=str(input))
    print_predictions(console, results)
    if output:
        write_predictions(results, output)
        console.print(f"Predictions: {output}")


@app.command()
def models() -> None:
    """List registered models."""
    from medsight.models.registry import list_models

    for entry in list_models():
        console.print(f"[bold]{entry.name}[/bold] ({entry.family}): {entry.description}")


@app.command()
def demo(
    output: Annotated[Path, typer.Option(help="Folder for the demo run.")] = Path("runs"),
    repeats: Annotated[int, typer.Option(help="Cross-validation repeats.")] = 2,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
) -> None:
    """Train and explain a breast-tumour diagnosis model on WDBC (bundled, no network)."""
    from medsight.demo import run_demo

    run_demo(console, output, repeats=repeats, folds=folds)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except MedsightError as exc:
        errors.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
