"""Build the run config from YAML and flags, and run training with a Rich progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medsight.config import TrainConfig, load_config, parse_config
from medsight.tasks.tabular import TabularRunResult, run_tabular


def resolve_train_config(config_path: Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """The YAML config (or defaults) with every non-None ``section.key`` flag applied on top."""
    raw = load_config(config_path).model_dump() if config_path else {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, key = dotted.split(".")
        node = raw
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    return parse_config(raw, source=str(config_path) if config_path else "command-line flags")


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
