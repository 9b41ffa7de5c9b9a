"""``medsight ecg``: ECG commands; ``stream`` replays a recording as a live monitor and
``beats-train`` trains an AAMI beat classifier on annotated records (EC57-style table).

Registered on the main app as a sub-app. Errors a user can fix are printed as one line on stderr
with exit code 2 here, so the command behaves the same under ``medsight`` and under a test runner.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from medsight.cli.user_errors import one_line_errors

if TYPE_CHECKING:
    import pandas as pd

    from medsight.bundle.ecg import EcgBundle
    from medsight.bundle.ecg_beats import BeatBundle
    from medsight.io.ecg import EcgRecord
    from medsight.stream.ecg import Alert, ReplayRun

ecg_app = typer.Typer(
    help="ECG tools: rhythm of recordings, beat classification, live monitoring of a recording.",
    no_args_is_help=True,
)
console = Console()

_STYLES = {
    "atrial_fibrillation": "bold red",
    "pause": "bold red",
    "tachycardia": "bold red",
    "bradycardia": "bold red",
    "af_ended": "green",
    "signal_quality": "yellow",
    "beat": "dim",
    "ventricular_run": "bold red",
    "ventricular_ectopy": "magenta",
    "supraventricular_ectopy": "cyan",
}


@ecg_app.command("predict")
def predict(
    bundle: Annotated[Path, typer.Argument(help="ECG rhythm bundle folder.")],
    files: Annotated[list[Path], typer.Argument(help="ECG files: WFDB (.hea), DICOM, CSV, NumPy.")],
    fs: Annotated[float | None, typer.Option(help="Sampling rate in Hz (CSV and NumPy).")] = None,
    explain_dir: Annotated[
        Path | None,
        typer.Option(help="Write an attribution strip PNG per recording (network bundles)."),
    ] = None,
) -> None:
    """The rhythm of each recording with its probability, or 'unreadable' with the reasons."""
    with one_line_errors():
        _predict(bundle, files, fs, explain_dir)


def _predict(bundle_path: Path, files: list[Path], fs: float | None, explain: Path | None) -> None:
    from rich.table import Table

    from medsight.bundle.ecg import UNREADABLE, EcgBundle
    from medsight.io.ecg import read_ecg

    bundle = EcgBundle.load(bundle_path)
    names = bundle.metadata.get("class_descriptions", {})
    table = Table(title=f"Rhythm ({bundle.metadata['model']['name']})")
    for column in ("recording", "rhythm", "probability", "notes"):
        table.add_column(column)
    for file in files:
        record = read_ecg(file, fs=fs)
        result = bundle.predict_record(record)
        label = names.get(result.label, result.label)
        probability = "-" if result.label == UNREADABLE else f"{result.probability:.3f}"
        if explain is not None and bundle.is_network and result.label != UNREADABLE:
            png = _explain(bundle, record, explain / f"{Path(file).stem}.png")
            result.warnings.append(f"explanation: {png}")
        table.add_row(file.name, label, probability, "; ".join(result.warnings) or "-")
    console.print(table)


def _explain(bundle: EcgBundle, record: EcgRecord, path: Path) -> Path:
    """Integrated Gradients over the first window of the recording, as a strip PNG."""
    from medsight.explain.ecg import save_attribution_png
    from medsight.transforms.ecg import fit_length

    length, _ = bundle.window
    window = fit_length(bundle.signal_of(record), length)
    return save_attribution_png(
        bundle.torch_model(), window, bundle.fs, path, class_names=bundle.class_names
    )


@ecg_app.command("stream")
def stream(
    file: Annotated[Path, typer.Argument(help="ECG file: WFDB (.hea), DICOM, CSV or NumPy.")],
    bundle: Annotated[
        Path | None, typer.Option(help="ECG rhythm bundle: adds AF alerts every 5 s.")
    ] = None,
    speed: Annotated[
        float | None, typer.Option(help="Replay at N x real time (default: as fast as possible).")
    ] = None,
    chunk_seconds: Annotated[float, typer.Option(help="Seconds of signal per chunk.")] = 0.5,
    fs: Annotated[float | None, typer.Option(help="Sampling rate in Hz (CSV and NumPy).")] = None,
    lead: Annotated[
        str | None, typer.Option(help="Lead name or index (default: the bundle's, else first).")
    ] = None,
    beats: Annotated[bool, typer.Option(help="Also print every beat.")] = False,
    beat_bundle: Annotated[
        Path | None,
        typer.Option(
            help="ECG beat bundle (beats-train): adds ventricular/supraventricular ectopy alerts."
        ),
    ] = None,
) -> None:
    """Replay a recording through the streaming monitor, printing each alert as it happens."""
    with one_line_errors():
        _stream(file, bundle, speed, chunk_seconds, fs, lead, beats, beat_bundle)


def _stream(
    file: Path,
    bundle_path: Path | None,
    speed: float | None,
    chunk_s: float,
    fs: float | None,
    lead: str | None,
    beats: bool,
    beat_bundle_path: Path | None = None,
) -> None:
    from medsight.bundle.ecg import EcgBundle
    from medsight.bundle.ecg_beats import BeatBundle
    from medsight.io.ecg import read_ecg
    from medsight.stream.ecg import StreamingEcgDetector, StreamSettings, replay

    record = read_ecg(file, fs=fs)
    bundle = EcgBundle.load(bundle_path) if bundle_path is not None else None
    beat_bundle = BeatBundle.load(beat_bundle_path) if beat_bundle_path is not None else None
    chosen = _lead(record, lead, bundle if bundle is not None else beat_bundle)
    detector = StreamingEcgDetector(
        record.fs, bundle, StreamSettings(beat_alerts=beats), beat_bundle=beat_bundle
    )
    console.print(
        f"[bold]{record.name or file.name}[/bold]: lead {record.lead_names[chosen]}, "
        f"{record.fs:g} Hz, {record.duration_seconds:.1f} s"
        + (f", rhythm bundle {bundle.metadata.get('name', bundle_path)}" if bundle else "")
        + (
            f", beat bundle {beat_bundle.metadata.get('name', beat_bundle_path)}"
            if beat_bundle
            else ""
        ),
        highlight=False,
        soft_wrap=True,
    )
    run = replay(record, chunk_s=chunk_s, speed=speed, detector=detector, lead=chosen)
    for alert in run:
        _print_alert(alert)
    _print_summary(run)


def _lead(record: EcgRecord, lead: str | None, bundle: EcgBundle | BeatBundle | None) -> int:
    """Index of the lead to monitor: ``--lead`` (name or index), the (rhythm, else beat)
    bundle's lead, or 0."""
    if lead is not None:
        key: str | int = int(lead) if lead.lstrip("-").isdigit() else lead
        return record.lead_names.index(record.select([key]).lead_names[0])
    wanted = bundle.metadata.get("lead") if bundle is not None else None
    if isinstance(wanted, str) and wanted in record.lead_names:
        return record.lead_names.index(wanted)
    if isinstance(wanted, int) and 0 <= wanted < record.n_leads:
        return wanted
    return 0


def _print_alert(alert: Alert) -> None:
    style = _STYLES.get(alert.kind, "bold")
    console.print(
        f"{alert.event_time_s:9.2f} s  [{style}]{alert.kind:<19}[/{style}] {alert.message}",
        highlight=False,
        soft_wrap=True,
    )


def _print_summary(run: ReplayRun) -> None:
    stats = run.stats
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(stats.kinds.items())) or "none"
    latency = (
        f"; latency p50 {stats.latency_p50_s:.2f} s, p95 {stats.latency_p95_s:.2f} s"
        if stats.alerts
        else ""
    )
    console.print(
        f"[bold]{stats.beats} beats[/bold] in {stats.signal_seconds:.1f} s of signal; "
        f"{stats.alerts} alerts ({kinds}){latency}",
        highlight=False,
        soft_wrap=True,
    )
    _, labels = run.detector.beat_classes
    if labels.size:
        counts = ", ".join(f"{c} {int((labels == c).sum())}" for c in sorted(set(labels.tolist())))
        console.print(f"{labels.size} beats classified: {counts}", highlight=False)
    updates = run.detector.rhythm_updates
    if updates:
        last = updates[-1]
        console.print(
            f"{len(updates)} rhythm updates; last at {last.time_s:.1f} s: {last.label} "
            f"(P {last.probabilities[last.label]:.2f})",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"processing: {stats.wall_seconds:.3f} s, {stats.realtime_factor:.0f}x real time",
        highlight=False,
        soft_wrap=True,
    )


@ecg_app.command("beats-train")
def beats_train(
    data: Annotated[
        Path, typer.Option(help="Folder of WFDB records with .atr beat annotations (MIT-BIH).")
    ],
    output: Annotated[Path, typer.Option(help="New bundle folder to write.")],
    split: Annotated[
        str,
        typer.Option(help="ds: de Chazal DS1 train / DS2 test (MIT-BIH); records: by record."),
    ] = "ds",
    lead: Annotated[
        str | None, typer.Option(help="Lead name or index (default MLII, else the first).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the model (and of a records split).")] = 0,
) -> None:
    """Train an AAMI beat classifier (N, S, V, F, Q); print the held-out EC57-style table."""
    with one_line_errors():
        _beats_train(data, output, split, lead, seed)


def _beats_train(data: Path, output: Path, split: str, lead: str | None, seed: int) -> None:
    from medsight.errors import ConfigError
    from medsight.tasks.ecg_beats import save_beat_bundle, train_beat_model

    if split not in ("ds", "records"):
        raise ConfigError(f"--split must be 'ds' or 'records'; got {split!r}.")
    if output.exists():
        raise ConfigError(f"{output} already exists; choose a new bundle folder.")
    key: str | int | None = int(lead) if lead is not None and lead.isdigit() else lead
    result = train_beat_model(data, split=split, seed=seed, lead=key)  # type: ignore[arg-type]
    console.print(
        f"train records ({len(result.train_records)}): {', '.join(result.train_records)}\n"
        f"test records ({len(result.test_records)}): {', '.join(result.test_records)}\n"
        f"train beats {result.train_counts}; test beats {result.test_counts}",
        highlight=False,
        soft_wrap=True,
    )
    _print_ec57(result.table, f"Held-out test beats, {result.model_name}, lead {result.lead}")
    bundle = save_beat_bundle(result, output)
    console.print(f"bundle: {bundle.path} ({result.seconds:.1f} s)", highlight=False)


def _print_ec57(table: pd.DataFrame, title: str) -> None:
    from rich.table import Table

    rich_table = Table(title=title)
    for column in ("class", "support", "predicted", "Se", "PPV", "F1"):
        rich_table.add_column(column, justify="left" if column == "class" else "right")
    for label, row in table.iterrows():
        rates = [row[c] for c in ("sensitivity", "ppv", "f1")]
        rich_table.add_row(
            str(label),
            f"{int(row['support'])}",
            "-" if label == "macro" else f"{int(row['predicted'])}",
            *("-" if value != value else f"{value:.3f}" for value in rates),
        )
    console.print(rich_table)
