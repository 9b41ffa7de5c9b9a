"""The generated PHI corpus and a small evaluation run on it (needs ../shared/data/mtsamples)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from medsight.privacy.phi_corpus import (
    DEV_SEED,
    generate_corpus,
    injection_names,
    note_part,
    read_corpus,
    write_corpus,
)
from medsight.privacy.text_eval import evaluate_text_scrubbing, score_notes
from medsight.privacy.text_phi import PHI_TYPES, first_names, surnames
from shared_helpers import shared_file

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def mtsamples() -> Path:
    return shared_file("mtsamples", "mtsamples.csv.gz")


def test_spans_point_at_exactly_the_injected_text(mtsamples: Path, tmp_path: Path) -> None:
    notes = generate_corpus(mtsamples, n_notes=20, seed=DEV_SEED, part="dev")
    assert len(notes) == 20 and all(note_part(n.note_id) == "dev" for n in notes)
    for note in notes:
        assert {s.phi_type for s in note.spans} == set(PHI_TYPES)  # every type in every note
        for span in note.spans:
            assert note.text[span.start : span.end] == span.text
            assert span.text == span.text.strip() and span.text
        starts = sorted((s.start, s.end) for s in note.spans)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(starts))
    path = tmp_path / "corpus.jsonl.gz"
    write_corpus(notes, path)
    assert read_corpus(path) == notes
    again = generate_corpus(mtsamples, n_notes=20, seed=DEV_SEED, part="dev")
    assert [n.text for n in again] == [n.text for n in notes]  # seeded


def test_injected_names_are_not_in_the_detector_dictionaries() -> None:
    firsts, lasts = injection_names()
    dictionary = {n.lower() for n in first_names() | surnames()}
    assert len(firsts) > 500 and len(lasts) > 500
    assert not dictionary & {n.lower() for n in firsts + lasts}


def test_dev_and_heldout_parts_do_not_share_notes(mtsamples: Path) -> None:
    dev = {n.note_id for n in generate_corpus(mtsamples, n_notes=50, seed=3, part="dev")}
    held = {n.note_id for n in generate_corpus(mtsamples, n_notes=50, seed=3, part="heldout")}
    assert dev and held and not dev & held


def test_a_small_evaluation_meets_the_targets(mtsamples: Path) -> None:
    # Fresh injections (seed 7) on development notes: the held-out part is kept for the benchmark.
    result = evaluate_text_scrubbing(mtsamples, n_notes=40, seed=7, part="dev")
    assert result["notes"] == 40 and result["spans"] >= 40 * len(PHI_TYPES)
    assert result["recall"] >= 0.98
    assert min(result["recall_per_type"].values()) >= 0.95
    assert set(result["recall_per_type"]) == set(PHI_TYPES)
    assert result["precision"] >= 0.90


def test_scoring_counts_partial_cover_as_a_miss() -> None:
    from medsight.privacy.phi_corpus import CorpusNote, CorpusSpan

    text = "Call 555-234-5678 now. Patient: Ann Xq"
    note = CorpusNote("x", text, [CorpusSpan(5, 17, "PHONE", "555-234-5678"),
                                  CorpusSpan(32, 35, "NAME", "Ann")])  # fmt: skip
    result = score_notes([note])
    assert result["recall_per_type"]["PHONE"] == 1.0
    # "Ann Xq" is detected as one name: it covers the gold span and overlaps it.
    assert result["recall"] == 1.0 and result["precision"] == 1.0
    # A gold span only partly covered is a miss; a detection outside every gold span is a false
    # positive.
    partial = CorpusNote("y", text, [CorpusSpan(0, 17, "PHONE", "Call 555-234-5678")])
    scored = score_notes([partial])
    assert scored["recall"] == 0.0 and scored["precision"] == 0.5
    assert scored["false_positives_per_type"] == {"NAME": 1}
