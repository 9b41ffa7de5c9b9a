"""De-identification benchmark: clinical-text scrubbing quality and DICOM throughput.

Run from the project root in .venv::

    python benchmarks/deid.py                       # 500 DICOM files, 500 notes
    python benchmarks/deid.py --files 50 --skip-text   # a smoke run

Text: ``medsight.privacy.text_eval.evaluate_text_scrubbing`` on notes from mtsamples with injected
identifiers of every Safe Harbor type (recall, precision, per type).

DICOM: a tree of ``--files`` files is built in a temporary folder from the pydicom and
pydicom-data test files (copies with their own Patient ID, name and study/series/instance UIDs,
spread over ``--patients`` patients, so it is like a real multi-patient tree). Files medsight would
quarantine (no Patient ID, burned-in risk, truncated, not DICOM) are left out of the tree, so both
tools process the same files end to end. Each tool reads, de-identifies and writes every file in
one process: medsight with the full Basic Profile plus Retain Longitudinal Modified Dates
(``deidentify_paths``: checks, atomic writes, the log), and dicognito
(``Anonymizer().anonymize(ds)`` with the same ``dcmread`` / ``save_as`` I/O). The two run in
alternation ``--rounds`` times and the best round of each is reported.

Progress goes to stderr; the last line of stdout is one JSON object
``{"text": {...}, "dicom": {"files", "files_per_second", "reference_tool",
"reference_files_per_second", ...}}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

DEFAULT_MTSAMPLES = Path("../shared/data/mtsamples/mtsamples.csv.gz")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ tree


def usable_sources() -> list[Path]:
    """Test files medsight de-identifies (not quarantined), read once to check."""
    from pydicom.data import get_testdata_files

    from medsight.privacy.dicom_deid import (
        DICOMDIR_SOP_CLASS,
        Quarantined,
        burned_in_reason,
        quiet_pydicom,
        read_dicom,
    )

    sources = []
    with quiet_pydicom():
        for name in sorted(get_testdata_files()):
            path = Path(name)
            if not path.is_file():
                continue
            try:
                ds = read_dicom(path)
            except Quarantined:
                continue
            if burned_in_reason(ds) or str(ds.get("SOPClassUID", "")) == DICOMDIR_SOP_CLASS:
                continue
            if "DirectoryRecordSequence" in ds or not str(ds.get("PatientID", "")).strip():
                continue
            sources.append(path)
    return sources


def build_tree(root: Path, n_files: int, n_patients: int) -> dict[str, Any]:
    """`n_files` copies of the usable test files under root/PATIENT/STUDY/, varied identities."""
    import pydicom
    from pydicom.uid import generate_uid

    from medsight.privacy.dicom_deid import quiet_pydicom

    sources = usable_sources()
    if not sources:
        raise SystemExit("no usable pydicom test files found")
    size = 0
    with quiet_pydicom():
        for i in range(n_files):
            source = sources[i % len(sources)]
            ds = pydicom.dcmread(source)
            patient = i % n_patients
            ds.PatientID = f"BENCH{patient:05d}"
            ds.PatientName = f"Patient^Number{patient}"
            ds.StudyInstanceUID = generate_uid()
            ds.SeriesInstanceUID = generate_uid()
            ds.SOPInstanceUID = generate_uid()
            if getattr(ds, "file_meta", None) is not None:
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            folder = root / f"patient{patient:05d}" / f"study{i % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{i:06d}_{source.name}"
            ds.save_as(target)
            size += target.stat().st_size
    return {"files": n_files, "distinct_sources": len(sources), "megabytes": round(size / 1e6, 1)}


# ------------------------------------------------------------------------------ tools


def run_medsight(tree: Path, out: Path) -> float:
    from medsight.privacy.dicom_deid import deidentify_paths
    from medsight.privacy.dicom_profile import DeidOptions
    from medsight.privacy.keys import DeidKey

    key = DeidKey(b"benchmark-key-" + b"x" * 32)
    options = DeidOptions(retain_longitudinal_modified_dates=True)
    start = time.perf_counter()
    outcomes = deidentify_paths([tree], out, key, options)
    elapsed = time.perf_counter() - start
    bad = [o for o in outcomes if o.status != "ok"]
    if bad:
        say(f"medsight: {len(bad)} files not de-identified, e.g. {bad[0].reason}")
    return elapsed


def run_dicognito(tree: Path, out: Path) -> float:
    import pydicom
    from dicognito.anonymizer import Anonymizer

    files = sorted(p for p in tree.rglob("*") if p.is_file())
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anonymizer = Anonymizer()
        for path in files:
            ds = pydicom.dcmread(path)
            anonymizer.anonymize(ds)
            target = out / path.relative_to(tree)
            target.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(target)
    return time.perf_counter() - start


def dicom_benchmark(n_files: int, n_patients: int, rounds: int) -> dict[str, Any]:
    from medsight.privacy.dicom_profile import PROFILE_EDITION
    from medsight.privacy.verify_dicom import scan_dicom_tree

    with tempfile.TemporaryDirectory(prefix="medsight-deid-bench-") as tmp:
        work = Path(tmp)
        say(f"building a tree of {n_files} files ...")
        tree_info = build_tree(work / "tree", n_files, n_patients)
        say(f"tree: {tree_info}")
        times: dict[str, list[float]] = {"medsight": [], "dicognito": []}
        for round_number in range(rounds):
            for tool, runner in (("medsight", run_medsight), ("dicognito", run_dicognito)):
                out = work / f"out-{tool}"
                shutil.rmtree(out, ignore_errors=True)
                elapsed = runner(work / "tree", out)
                times[tool].append(elapsed)
                say(f"round {round_number + 1} {tool}: {n_files / elapsed:.1f} files/s")
        start = time.perf_counter()
        findings = scan_dicom_tree(work / "out-medsight")
        verify_seconds = time.perf_counter() - start
    best = {tool: min(values) for tool, values in times.items()}
    return {
        "files": n_files,
        "patients": n_patients,
        "files_per_second": round(n_files / best["medsight"], 1),
        "reference_tool": f"dicognito {version('dicognito')}",
        "reference_files_per_second": round(n_files / best["dicognito"], 1),
        "speedup": round(best["dicognito"] / best["medsight"], 2),
        "profile": PROFILE_EDITION,
        "options": ["retain_longitudinal_modified_dates"],
        "rounds": rounds,
        "verify_findings": len(findings),
        "verify_files_per_second": round(n_files / verify_seconds, 1),
        "tree": tree_info,
        "pydicom": version("pydicom"),
    }


def text_benchmark(mtsamples: Path, n_notes: int) -> dict[str, Any]:
    try:
        from medsight.privacy.text_eval import evaluate_text_scrubbing
    except ImportError as exc:
        return {"skipped": f"text evaluation not available: {exc}"}
    if not mtsamples.exists():
        return {"skipped": f"{mtsamples} not found"}
    say(f"text: scrubbing {n_notes} generated notes ...")
    start = time.perf_counter()
    result = evaluate_text_scrubbing(mtsamples, n_notes=n_notes, seed=0)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=500, help="DICOM files in the tree")
    parser.add_argument("--patients", type=int, default=50, help="patients the tree spans")
    parser.add_argument("--rounds", type=int, default=2, help="alternating timing rounds")
    parser.add_argument("--mtsamples", type=Path, default=DEFAULT_MTSAMPLES)
    parser.add_argument("--notes", type=int, default=500, help="generated notes to score")
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--skip-dicom", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    result["text"] = (
        {"skipped": "--skip-text"} if args.skip_text else text_benchmark(args.mtsamples, args.notes)
    )
    if not args.skip_dicom:
        result["dicom"] = dicom_benchmark(args.files, args.patients, args.rounds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
