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

from medsight.cli.deid import deid_app
from medsight.cli.ecg import ecg_app
from medsight.cli.registry import registry_app
from medsight.cli.retrain import retrain_command
from medsight.cli.serve import serve_command
from medsight.cli.users import users_app
from medsight.errors import ConfigError, MedsightError

app = typer.Typer(
    name="medsight",
    help="Local-first diagnosis support: train, evaluate, explain and serve clinical models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)
data_app = typer.Typer(help="Inspect data before training.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(deid_app, name="deid")
app.add_typer(ecg_app, name="ecg")
app.add_typer(registry_app, name="registry")
app.command("retrain")(retrain_command)
app.command("serve")(serve_command)
app.add_typer(users_app, name="users")
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


@data_app.command("images")
def data_images(
    data: Annotated[
        str,
        typer.Argument(help=".npz, medmnist:NAME, class folders, path,label CSV or 'phantom'."),
    ],
    threshold: Annotated[
        float, typer.Option(help="Pixel correlation from which two images are near-duplicates.")
    ] = 0.97,
    image_size: Annotated[int | None, typer.Option(help="Resize to N x N first.")] = None,
    max_images: Annotated[int, typer.Option(help="Skip the search above this many.")] = 30_000,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the audit as JSON.")
    ] = None,
    figure: Annotated[
        Path | None, typer.Option(help="Write the cross-split pairs side by side to this PNG.")
    ] = None,
) -> None:
    """Near-duplicate images within and across the train / val / test splits (leakage) and
    near-duplicates whose labels differ, as training would split the data."""
    from medsight.cli.render import print_image_audit
    from medsight.config import ImageDataConfig
    from medsight.data.image_audit import audit_images
    from medsight.tasks.image_data import load_image_splits
    from medsight.tasks.image_report import plot_duplicate_pairs

    splits = load_image_splits(ImageDataConfig(path=data, image_size=image_size))
    audit = audit_images(splits.items(), threshold=threshold, max_images=max_images)
    source = splits.source + (" (official splits)" if splits.official_splits else "")
    print_image_audit(console, source, audit)
    if json_out:
        json_out.write_text(json.dumps(audit.to_dict(), indent=2))
        console.print(f"JSON audit: {json_out}")
    if figure:
        drawing = plot_duplicate_pairs(audit, dict(splits.items()))
        if drawing is None:
            console.print("No near-duplicates across splits: no figure written.")
        else:
            drawing.savefig(figure)
            console.print(f"Figure: {figure}")


@app.command()
def train(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML run config.")] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="CSV/Parquet table; or images: .npz, medmnist:NAME, class folders, "
            "path,label CSV with --task image, or 'phantom'; or an ECG folder of WFDB records "
            "with REFERENCE.csv."
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="tabular, image or ecg (inferred from --data when omitted)."),
    ] = None,
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
    threshold: Annotated[
        str | None,
        typer.Option(
            help="fixed, youden, sensitivity or accuracy (tables; images: 2 classes or findings)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name.")] = None,
    output: Annotated[Path | None, typer.Option(help="Folder for run folders.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Images: resize to N x N.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Images and ECG: maximum epochs.")] = None,
    ensemble: Annotated[
        int | None, typer.Option(help="Images: networks averaged (different seeds; default 5).")
    ] = None,
    svm_member: Annotated[
        bool | None,
        typer.Option(
            "--svm-member/--no-svm-member",
            help="Images: average an RBF SVM on wavelet scattering coefficients with the networks "
            "(its share chosen on val).",
        ),
    ] = None,
    tree_member: Annotated[
        bool | None,
        typer.Option(
            "--tree-member/--no-tree-member",
            help="Images: average LightGBM on wavelet scattering coefficients with the other "
            "members (a quarter of the probability).",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Images: continue an interrupted run from its checkpoint.")
    ] = False,
    require_deidentified: Annotated[
        bool,
        typer.Option(
            "--require-deidentified",
            help="Refuse data that is not de-identified (DICOM without the de-identification "
            "marker or with identifiers left, table cells or WFDB comments that look like PHI).",
        ),
    ] = False,
) -> None:
    """Train, evaluate with confidence intervals, write the bundle and the HTML report.

    Tables are cross-validated; images and ECG records are trained on train, early-stopped on
    val, tested once.
    """
    from medsight.cli.render import print_ecg_run, print_image_run, print_run
    from medsight.cli.runner import (
        ECG_TASK,
        IMAGE_TASK,
        looks_like_ecg_folder,
        looks_like_image_data,
        resolve_train_config,
        run_ecg_with_progress,
        run_image_with_progress,
        train_with_progress,
    )
    from medsight.train.distributed import exit_after_distributed_run, launch_rank

    task_name = {
        "image": IMAGE_TASK,
        "tabular": "tabular-classification",
        "ecg": ECG_TASK,
        None: None,
    }.get(task)
    if task is not None and task_name is None:
        raise ConfigError(f"--task must be 'tabular', 'image' or 'ecg', got '{task}'.")
    deidentified = True if require_deidentified else None  # None: the config file decides
    if task_name is None and config is None and looks_like_ecg_folder(data):
        task_name = ECG_TASK
    if task_name is None and config is None and looks_like_image_data(data):
        task_name = IMAGE_TASK
    if task_name is None and config is not None and _config_task(config) == ECG_TASK:
        task_name = ECG_TASK
    if task_name == ECG_TASK:
        if resume:
            raise ConfigError("--resume is for image runs; an ECG run starts from scratch.")
        ecg_overrides = {
            "data.path": data,
            "data.require_deidentified": deidentified,
            "model.name": model,
            "engine.epochs": epochs,
            "seed": seed,
            "name": name,
            "output_dir": output,
        }
        ecg_config = resolve_train_config(config, ecg_overrides, task=ECG_TASK)
        print_ecg_run(console, run_ecg_with_progress(console, ecg_config))
        return
    if task_name == IMAGE_TASK or (config is not None and _config_task(config) == IMAGE_TASK):
        image_overrides = {
            "data.path": data,
            "data.require_deidentified": deidentified,
            "data.positive_class": positive_class,
            "data.image_size": image_size,
            "model.name": model,
            "engine.epochs": epochs,
            "model.ensemble": ensemble,
            "model.svm_member.enabled": svm_member,
            "model.tree_member.enabled": tree_member,
            "evaluation.threshold": threshold,
            "seed": seed,
            "name": name,
            "output_dir": output,
        }
        image_config = resolve_train_config(config, image_overrides, task=IMAGE_TASK)
        result = run_image_with_progress(console, image_config, resume=resume)
        if launch_rank() == 0:  # under torchrun only rank 0 reports
            print_image_run(console, result)
        exit_after_distributed_run()  # a torchrun worker ends here, past torch's gloo teardown
        return

    overrides = {
        "data.path": data,
        "data.require_deidentified": deidentified,
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
    run_config = resolve_train_config(config, overrides, task=task_name)
    result = train_with_progress(console, run_config)
    print_run(console, result)


def _config_task(path: Path) -> str:
    from medsight.config import load_config

    return load_config(path).task


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
    inputs: Annotated[
        list[Path],
        typer.Argument(help="A CSV/Parquet table, or image files / folders for image bundles."),
    ],
    output: Annotated[Path | None, typer.Option(help="Write results as .json or .csv.")] = None,
    explain: Annotated[bool, typer.Option(help="Add SHAP contributions / Grad-CAM.")] = True,
    top: Annotated[int, typer.Option(help="Contributions per patient.")] = 5,
    gradcam_dir: Annotated[
        Path | None, typer.Option(help="Images: folder for Grad-CAM overlay PNGs.")
    ] = None,
) -> None:
    """Predict each row or image: label, probability and what drove it."""
    from medsight.cli.render import print_image_predictions, print_predictions
    from medsight.tasks.external import bundle_task, load_bundle, write_predictions

    if bundle_task(bundle) == "image-classification":
        from medsight.tasks.image_predict import predict_images

        results = predict_images(bundle, inputs, gradcam_dir=gradcam_dir if explain else None)
        print_image_predictions(console, results)
    else:
        from medsight.io.tabular import read_table

        if len(inputs) != 1:
            raise ConfigError("a tabular bundle predicts one table at a time; give one file.")
        loaded = load_bundle(bundle)
        frame = read_table(inputs[0])
        results = loaded.predict(frame, explain=explain, top_k=top, where=str(inputs[0]))
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
    output: Annotated[Path, typer.Option(help="Folder for the demo runs.")] = Path("runs"),
    part: Annotated[str, typer.Option(help="all, tabular or image.")] = "all",
    repeats: Annotated[int, typer.Option(help="Tabular: cross-validation repeats.")] = 2,
    folds: Annotated[int, typer.Option(help="Tabular: cross-validation folds.")] = 5,
    epochs: Annotated[int | None, typer.Option(help="Image: maximum epochs.")] = None,
) -> None:
    """End to end with no network: breast-tumour diagnosis on WDBC, then image diagnosis."""
    if part not in ("all", "tabular", "image"):
        raise ConfigError(f"--part must be all, tabular or image; got '{part}'.")
    from medsight.demo_service import IMAGE_TASK, TABULAR_TASK, prepare_demo_service

    bundles: dict[str, Path] = {}
    if part in ("all", "tabular"):
        from medsight.demo import run_demo

        bundles[TABULAR_TASK] = run_demo(console, output, repeats=repeats, folds=folds).bundle_path
    if part in ("all", "image"):
        from medsight.demo_imaging import run_image_demo

        bundles[IMAGE_TASK] = run_image_demo(console, output, epochs=epochs).bundle_path
    prepare_demo_service(console, None, bundles)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except MedsightError as exc:
        errors.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
