"""``medsight ecg``: ECG commands; ``medsight ecg stream`` replays a recording as a live monitor.

Registered on the main app as a sub-app. Errors a user can fix are printed as one line on stderr
with exit code 2 here, so the command behaves the same under ``medsight`` and under a test runner.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from medsight.errors import MedsightError

if TYPE_CHECKING:
    from medsight.bundle.ecg import EcgBundle
    from medsight.io.ecg import EcgRecord
    from medsight.stream.ecg import Alert, ReplayRun

ecg_app = typer.Typer(
    help="ECG tools: rhythm of recordings, live monitoring of a recording.", no_args_is_help=True
)
console = Console()
errors = Console(stderr=True)

_STYLES = {
    "atrial_fibrillation": "bold red",
    "pause": "bold red",
    "tachycardia": "bold red",
    "bradycardia": "bold red",
    "af_ended": "green",
    "signal_quality": "yellow",
    "beat": "dim",
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
    try:
        _predict(bundle, files, fs, explain_dir)
    except MedsightError as exc:
        errors.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


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
) -> None:
    """Replay a recording through the streaming monitor, printing each alert as it happens."""
    try:
        _stream(file, bundle, speed, chunk_seconds, fs, lead, beats)
    except MedsightError as exc:
        errors.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def _stream(
    file: Path,
    bundle_path: Path | None,
    speed: float | None,
    chunk_s: float,
    fs: float | None,
    lead: str | None,
    beats: bool,
) -> None:
    from medsight.bundle.ecg import EcgBundle
    from medsight.io.ecg import read_ecg
    from medsight.stream.ecg import StreamingEcgDetector, StreamSettings, replay

    record = read_ecg(file, fs=fs)
    bundle = EcgBundle.load(bundle_path) if bundle_path is not None else None
    chosen = _lead(record, lead, bundle)
    detector = StreamingEcgDetector(record.fs, bundle, StreamSettings(beat_alerts=beats))
    console.print(
        f"[bold]{record.name or file.name}[/bold]: lead {record.lead_names[chosen]}, "
        f"{record.fs:g} Hz, {record.duration_seconds:.1f} s"
        + (f", rhythm bundle {bundle.metadata.get('name', bundle_path)}" if bundle else ""),
        highlight=False,
        soft_wrap=True,
    )
    run = replay(record, chunk_s=chunk_s, speed=speed, detector=detector, lead=chosen)
    for alert in run:
        _print_alert(alert)
    _print_summary(run)


def _lead(record: EcgRecord, lead: str | None, bundle: EcgBundle | None) -> int:
    """Index of the lead to monitor: ``--lead`` (name or index), the bundle's lead, or 0."""
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
