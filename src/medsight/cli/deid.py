"""``medsight deid``: de-identify DICOM trees and clinical notes, verify the output, make keys.

``dicom`` and ``text`` run ``verify`` on their output at the end of every batch and exit with 1
when it finds anything (or when a file failed); errors a user can fix exit with 2 on one line.
The key is never printed: only its fingerprint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medsight.cli.user_errors import one_line_errors
from medsight.errors import ConfigError

deid_app = typer.Typer(
    help="De-identification: DICOM (PS3.15 Basic Profile), clinical notes (HIPAA Safe Harbor).",
    no_args_is_help=True,
)
console = Console()
errors = Console(stderr=True)

KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="Key file (else $MEDSIGHT_DEID_KEY_FILE or $MEDSIGHT_DEID_KEY). "
        "Create one with `medsight deid keygen`.",
    ),
]
MAX_SHOWN = 20


def _split(paths: list[Path]) -> tuple[list[Path], Path]:
    if len(paths) < 2:
        raise ConfigError("give at least one input and the output folder: IN... OUT")
    inputs, out = paths[:-1], paths[-1]
    for path in inputs:
        if not path.exists():
            raise ConfigError(f"input {path} does not exist")
        if path.resolve() == out.resolve():
            raise ConfigError("the output folder must differ from the inputs")
    return inputs, out


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    )


@deid_app.command("dicom")
def dicom(
    paths: Annotated[list[Path], typer.Argument(help="Input files or folders, then OUT.")],
    key_file: KeyFile = None,
    options: Annotated[
        list[str] | None,
        typer.Option(
            "--options",
            help="PS3.15 options, comma-separated: modified-dates, full-dates, "
            "patient-characteristics, device-identity, institution-identity, uids, "
            "safe-private, clean-descriptors, clean-structured-content.",
        ),
    ] = None,
    reid_map: Annotated[
        Path | None,
        typer.Option(help="Also write the pseudonym -> Patient ID map here, encrypted."),
    ] = None,
) -> None:
    """De-identify DICOM files and folder trees into OUT (mirrored), then verify OUT."""
    with one_line_errors():
        code = _dicom(paths, key_file, options or [], reid_map)
    raise typer.Exit(code)


def _dicom(
    paths: list[Path], key_file: Path | None, names: list[str], reid_map: Path | None
) -> int:
    from medsight.privacy.dicom_deid import deidentify_paths
    from medsight.privacy.dicom_profile import DeidOptions
    from medsight.privacy.keys import DeidKey

    inputs, out = _split(paths)
    flat = [part for name in names for part in name.split(",")]
    deid_options = DeidOptions.from_names(flat)
    key = DeidKey.resolve(key_file)
    with _progress() as progress:
        task = progress.add_task("de-identifying", total=None)
        outcomes = deidentify_paths(
            inputs,
            out,
            key,
            deid_options,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            reid_map=reid_map,
        )
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "quarantined", "failed")}
    console.print(
        f"{counts['ok']} de-identified, {counts['quarantined']} quarantined, "
        f"{counts['failed']} failed (key {key.fingerprint()}; log {out / 'deid-log.jsonl'})"
    )
    for outcome in [o for o in outcomes if o.status != "ok"][:MAX_SHOWN]:
        console.print(f"  {outcome.status}: {outcome.source}: {outcome.reason}", highlight=False)
    if reid_map is not None:
        console.print(f"re-identification map (encrypted): {reid_map}")
    found = _verify_dicom(out)
    return 1 if found or counts["failed"] else 0


def _verify_dicom(root: Path) -> int:
    from medsight.privacy.verify_dicom import scan_dicom_tree

    findings = scan_dicom_tree(root)
    if not findings:
        console.print(f"[green]verify: no identifying attribute found in {root}[/green]")
        return 0
    table = Table(title=f"verify: {len(findings)} finding(s) in {root}")
    for column in ("file", "tag", "attribute", "problem"):
        table.add_column(column)
    for finding in findings[:MAX_SHOWN]:
        table.add_row(finding.path, finding.tag, finding.keyword, finding.problem)
    console.print(table)
    return len(findings)


@deid_app.command("text")
def text(
    paths: Annotated[list[Path], typer.Argument(help="Input .txt files or folders, then OUT.")],
    key_file: KeyFile = None,
    dates: Annotated[
        str, typer.Option(help="shift (per-patient offset) or year (keep the year only).")
    ] = "shift",
) -> None:
    """Scrub HIPAA Safe Harbor identifiers from clinical notes into OUT, then verify OUT."""
    with one_line_errors():
        code = _text(paths, key_file, dates)
    raise typer.Exit(code)


def _text(paths: list[Path], key_file: Path | None, dates: str) -> int:
    from medsight.privacy.keys import DeidKey

    if dates not in ("shift", "year"):
        raise ConfigError(f"--dates must be shift or year, not {dates!r}")
    from medsight.privacy.text_deid import scrub_paths
    from medsight.privacy.verify_text import scan_text_paths

    inputs, out = _split(paths)
    key = DeidKey.resolve(key_file)
    with _progress() as progress:
        task = progress.add_task("scrubbing", total=None)
        outcomes = scrub_paths(
            inputs,
            out,
            key,
            dates=dates,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    ok = sum(o.status == "ok" for o in outcomes)
    failed = [o for o in outcomes if o.status != "ok"]
    console.print(f"{ok} scrubbed, {len(failed)} failed (key {key.fingerprint()})")
    for outcome in failed[:MAX_SHOWN]:
        console.print(f"  failed: {outcome.source}: {outcome.reason}", highlight=False)
    written = [Path(o.output) for o in outcomes if o.output]
    # a shifted date is still a full date; only year-only output may be checked for dates
    found = _print_text_findings(scan_text_paths(written, allow_dates=dates == "shift"))
    return 1 if found or failed else 0


def _print_text_findings(findings: list) -> int:
    if not findings:
        console.print("[green]verify: no PHI-looking text found[/green]")
        return 0
    table = Table(title=f"verify: {len(findings)} PHI-looking span(s)")
    for column in ("file", "line", "type", "excerpt"):
        table.add_column(column)
    for finding in findings[:MAX_SHOWN]:
        table.add_row(finding.path, str(finding.line), finding.phi_type, finding.excerpt)
    console.print(table)
    return len(findings)


@deid_app.command("verify")
def verify(
    paths: Annotated[list[Path], typer.Argument(help="De-identified folders or files.")],
) -> None:
    """Report identifying attributes (DICOM) and PHI-looking text (.txt) left in PATH."""
    with one_line_errors():
        code = _verify(paths)
    raise typer.Exit(code)


def _verify(paths: list[Path]) -> int:
    found = 0
    texts: list[Path] = []
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path} does not exist")
        found += _verify_dicom(path)
        candidates = [path] if path.is_file() else sorted(path.rglob("*.txt"))
        texts += [p for p in candidates if p.suffix == ".txt" and "quarantine" not in p.parts]
    if texts:
        from medsight.privacy.verify_text import scan_text_paths

        found += _print_text_findings(scan_text_paths(texts))
    return 1 if found else 0


@deid_app.command("keygen")
def keygen(
    keyfile: Annotated[
        Path, typer.Argument(help="Where to write the new key (never overwritten).")
    ],
) -> None:
    """Create a random de-identification key file (mode 600); prints only its fingerprint."""
    with one_line_errors():
        from medsight.privacy.keys import DeidKey

        key = DeidKey.generate()
        key.write(keyfile)
        console.print(f"key written to {keyfile} (fingerprint {key.fingerprint()}); keep it secret")
