"""Build the run config from YAML and flags, and run training with a Rich progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medsight.config import (
    AnyConfig,
    EcgTrainConfig,
    ImageTrainConfig,
    TrainConfig,
    load_config,
    parse_config,
)
from medsight.tasks.tabular import TabularRunResult, run_tabular

IMAGE_TASK = "image-classification"
ECG_TASK = "ecg-rhythm"


def looks_like_ecg_folder(data: Path | str | None) -> bool:
    """True for a folder with a ``REFERENCE.csv`` (the PhysioNet/CinC 2017 rhythm layout)."""
    return data is not None and (Path(str(data)) / "REFERENCE.csv").is_file()


def looks_like_image_data(data: Path | str | None) -> bool:
    """True for data that only the image task reads: .npz, medmnist:NAME, phantom, folders."""
    if data is None:
        return False
    text = str(data)
    return (
        text.lower().startswith("medmnist:")
        or text == "phantom"
        or text.lower().endswith(".npz")
        or Path(text).is_dir()
    )


def resolve_train_config(
    config_path: Path | None, overrides: dict[str, Any], *, task: str | None = None
) -> AnyConfig:
    """The YAML config (or defaults) with every non-None ``section.key`` flag applied on top."""
    raw = load_config(config_path).model_dump() if config_path else {}
    if task is not None:
        raw["task"] = task
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, key = dotted.split(".")
        node = raw
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    return parse_config(raw, source=str(config_path) if config_path else "command-line flags")


def run_image_with_progress(
    console: Console, config: ImageTrainConfig, *, resume: bool = False
) -> Any:
    """Run the image task; the engine draws its own per-epoch progress bar."""
    from medsight.tasks.image import run_image

    return run_image(
        config, resume=resume, stage=lambda message: console.print(f"[dim]•[/dim] {message}")
    )


def run_ecg_with_progress(console: Console, config: EcgTrainConfig) -> Any:
    """Run the ECG task: a bar while records are read, then the engine's per-epoch bar."""
    from medsight.tasks.ecg_run import run_ecg

    reading = Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = reading.add_task("reading ECG records", total=None)

    def on_read(done: int, total: int) -> None:
        if not reading.live.is_started and done < total:
            reading.start()
        reading.update(task, completed=done, total=total)
        if done >= total and reading.live.is_started:
            reading.stop()  # the engine draws its own bar next; Rich allows one at a time

    try:
        return run_ecg(
            config, log=lambda message: console.print(f"[dim]•[/dim] {message}"), on_read=on_read
        )
    finally:
        if reading.live.is_started:
            reading.stop()


def train_with_progress(console: Console, config: TrainConfig) -> TabularRunResult:
    """Run the tabular task, showing each stage and a bar over cross-validation folds."""
    with Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("cross-validation folds", total=None)

        def on_fold(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        def on_stage(message: str) -> None:
            progress.console.print(f"[dim]•[/dim] {message}")

        return run_tabular(config, progress=on_fold, stage=on_stage)
