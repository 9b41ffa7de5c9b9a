"""``medsight retrain TASK``: retrain the production model with clinician feedback, promote it only
if it is not worse.

Acts as the local administrator ``cli:<OS user>`` (see :mod:`medsight.cli.registry`) on the store
of ``MEDSIGHT_DATA_DIR`` / ``MEDSIGHT_DATABASE_URL``. Exit codes, for scripts:

- ``0``: the run finished; the challenger was promoted, or it was refused and the champion stays
  (the last line says which; ``comparison.json`` in the run folder has ``"promoted"``);
- ``1``: only with ``--strict``: the run finished but the challenger was not promoted;
- ``2``: an error a user can fix (message on stderr), nothing promoted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from medsight.cli.user_errors import one_line_errors

if TYPE_CHECKING:
    from medsight.retrain import RetrainOutcome

console = Console()
NOT_PROMOTED_EXIT = 1


def retrain_command(
    task: Annotated[
        str, typer.Argument(help="Task whose production model to retrain (see `registry list`).")
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            help="Original training data: a table, images or an ECG records folder (default: "
            "the path in the champion's config)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="The champion's training config.yaml (default: found from its bundle or run).",
        ),
    ] = None,
    holdout: Annotated[
        Path | None,
        typer.Option(
            help="Labelled cases that neither model trained on: the fairest comparison. Tables: "
            "a table with the same columns (without it a stratified fraction of the original "
            "data is held out). Images: class folders, a path,label CSV or an .npz (without it "
            "the original test split)."
        ),
    ] = None,
    holdout_fraction: Annotated[
        float,
        typer.Option(help="Tables: share of the original data held out when --holdout is absent."),
    ] = 0.3,
    auroc_margin: Annotated[
        float, typer.Option(help="Non-inferiority margin of AUROC (challenger - champion).")
    ] = 0.02,
    sensitivity_margin: Annotated[
        float, typer.Option(help="How much lower the challenger's sensitivity may be.")
    ] = 0.02,
    alpha: Annotated[
        float, typer.Option(help="One-sided significance level of the DeLong bound.")
    ] = 0.05,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for the metrics' intervals.")
    ] = 1000,
    output: Annotated[
        Path | None,
        typer.Option(help="Folder for retraining runs (default: <MEDSIGHT_DATA_DIR>/retrain)."),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with code 1 when the challenger is refused.")
    ] = False,
) -> None:
    """Train a challenger on the original data plus confirmed and corrected feedback, compare it
    with the production model on the same held-out cases, promote it only when its AUROC is
    non-inferior (DeLong) and its sensitivity not lower beyond the margin. A comparison report is
    written either way.

    Exit code 0 whether or not the challenger was promoted (1 with --strict when it was not),
    2 on errors."""
    from medsight.registry import ModelRegistry
    from medsight.retrain import GateSettings, RetrainOptions, retrain
    from medsight.store.audit import CLI_SOURCE
    from medsight.store.database import open_database
    from medsight.store.settings import StoreSettings
    from medsight.store.users import local_cli_user

    with one_line_errors():
        options = RetrainOptions(
            data=data,
            config=config,
            holdout=holdout,
            holdout_fraction=holdout_fraction,
            gate=GateSettings(
                auroc_margin=auroc_margin, sensitivity_margin=sensitivity_margin, alpha=alpha
            ),
            n_bootstrap=bootstrap,
        )
        settings = StoreSettings.from_env()
        database = open_database(settings)
        try:
            with database.transaction() as session:
                user = local_cli_user(session)
            outcome = retrain(
                database,
                ModelRegistry.from_settings(settings),
                task,
                actor=user,
                options=options,
                output_dir=output or settings.data_dir / "retrain",
                source=CLI_SOURCE,
                stage=lambda message: console.print(f"[dim]{message}…[/dim]", highlight=False),
            )
        finally:
            database.dispose()
    print_outcome(console, outcome)
    if strict and not outcome.promoted:
        raise typer.Exit(NOT_PROMOTED_EXIT)


def print_outcome(console: Console, outcome: RetrainOutcome) -> None:
    """Counts, both models' held-out figures, DeLong, the decision with reasons, the report."""
    from medsight.retrain.report import headline, operating_point

    counts, decision = outcome.counts, outcome.decision
    console.print(
        f"Original rows {counts['original_rows']} ({counts['original_training_rows']} used for "
        f"training); feedback used {counts['feedback_used']} "
        f"({counts['feedback_confirmed']} confirmed, {counts['feedback_corrected']} corrected), "
        f"unusable {len(outcome.unusable)}; held-out rows {counts['holdout_rows']}.",
        highlight=False,
    )
    multi_label = outcome.held_out.findings is not None
    prefix = "macro_" if multi_label else ""  # multi-label: means over findings
    table = Table(title=f"{outcome.task}: champion v{outcome.champion.version} vs challenger")
    mean = "mean " if multi_label else ""
    for column in ("model", f"{mean}AUROC (95% CI)", f"{mean}sensitivity (95% CI)", "threshold"):
        table.add_column(column)
    for name, threshold in (
        (f"champion v{outcome.champion.version}", decision.threshold_champion),
        ("challenger", decision.threshold_challenger),
    ):
        metrics = outcome.metrics[name.split()[0]]
        point = "per finding" if multi_label else operating_point(threshold)
        table.add_row(
            name,
            str(metrics[f"{prefix}auroc"]),
            str(metrics[f"{prefix}sensitivity"]),
            point.removeprefix("threshold "),
        )
    console.print(table)
    weakest = " (mean over findings; bound and p of the weakest)" if multi_label else ""
    console.print(
        f"DeLong{weakest}: AUROC difference {decision.auroc_difference:+.3f}, one-sided "
        f"{1 - decision.alpha:.0%} lower bound {decision.auroc_lower_bound:+.3f} (margin "
        f"-{decision.auroc_margin:.3f}), p = {decision.delong_p_value:.3g}",
        highlight=False,
    )
    for reason in decision.reasons:
        console.print(f"  - {reason}", highlight=False, soft_wrap=True)
    for note in [*outcome.notes, *([outcome.registry_note] if outcome.registry_note else [])]:
        console.print(f"[yellow]Note:[/yellow] {note}", highlight=False, soft_wrap=True)
    console.print(f"Report: [bold]{outcome.report_path}[/bold]", highlight=False, soft_wrap=True)
    style = "bold green" if outcome.promoted else "bold yellow"
    console.print(f"[{style}]{headline(outcome)}[/{style}]", highlight=False, soft_wrap=True)
