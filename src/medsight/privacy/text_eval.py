"""Span-level recall and precision of the clinical-note PHI detector on the generated corpus.

Recall: an injected span counts as found when the detected spans (of any type) cover all of its
non-space characters; ``recall_typed`` asks the covering spans to have the injected type.
Precision: a detected span counts as correct when it overlaps an injected span (any type;
``precision_typed``: of its own type). Every detection that overlaps no injected span is a false
positive, including real-looking identifiers that were already in the mtsamples text (dates,
cities, names left by its publishers): they are not annotated, so they are counted against
precision (``false_positives`` and ``false_positives_per_type`` say how many).

The default is the held-out part of mtsamples with ``HELDOUT_SEED``; the rules were developed on
the ``dev`` part with ``DEV_SEED`` (see ``medsight.privacy.phi_corpus``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from medsight.privacy.phi_corpus import HELDOUT_SEED, CorpusNote, generate_corpus
from medsight.privacy.text_phi import PHI_TYPES, PhiSpan, detect_phi


def _covered(text: str, start: int, end: int, spans: list[PhiSpan], phi_type: str | None) -> bool:
    needed = {i for i in range(start, end) if not text[i].isspace()}
    for span in spans:
        if span.end <= start or span.start >= end:
            continue
        if phi_type is None or span.phi_type == phi_type:
            needed -= set(range(span.start, span.end))
    return not needed


def score_notes(notes: list[CorpusNote]) -> dict:
    """The figures for already generated notes (see the module docstring)."""
    found, found_typed, total = Counter(), Counter(), Counter()
    correct, correct_typed, detected = Counter(), Counter(), Counter()
    for note in notes:
        spans = detect_phi(note.text)
        for gold in note.spans:
            total[gold.phi_type] += 1
            if _covered(note.text, gold.start, gold.end, spans, None):
                found[gold.phi_type] += 1
            if _covered(note.text, gold.start, gold.end, spans, gold.phi_type):
                found_typed[gold.phi_type] += 1
        for span in spans:
            detected[span.phi_type] += 1
            hits = [g for g in note.spans if g.start < span.end and span.start < g.end]
            if hits:
                correct[span.phi_type] += 1
            if any(g.phi_type == span.phi_type for g in hits):
                correct_typed[span.phi_type] += 1

    def ratio(num: float, den: float) -> float:
        return round(num / den, 4) if den else float("nan")

    n_spans, n_detected = sum(total.values()), sum(detected.values())
    types = [t for t in PHI_TYPES if total[t] or detected[t]]
    return {
        "notes": len(notes),
        "spans": n_spans,
        "recall": ratio(sum(found.values()), n_spans),
        "precision": ratio(sum(correct.values()), n_detected),
        "recall_per_type": {t: ratio(found[t], total[t]) for t in types if total[t]},
        "precision_per_type": {t: ratio(correct[t], detected[t]) for t in types if detected[t]},
        "recall_typed": ratio(sum(found_typed.values()), n_spans),
        "precision_typed": ratio(sum(correct_typed.values()), n_detected),
        "recall_per_type_typed": {t: ratio(found_typed[t], total[t]) for t in types if total[t]},
        "spans_per_type": {t: total[t] for t in types if total[t]},
        "detected": n_detected,
        "false_positives": n_detected - sum(correct.values()),
        "false_positives_per_type": {
            t: detected[t] - correct[t] for t in types if detected[t] - correct[t]
        },
    }


def evaluate_text_scrubbing(
    mtsamples_csv: Path, *, n_notes: int = 500, seed: int = HELDOUT_SEED, part: str = "heldout"
) -> dict:
    """Generate ``n_notes`` annotated notes (``part``, ``seed``) and score the detector on them."""
    notes = generate_corpus(Path(mtsamples_csv), n_notes=n_notes, seed=seed, part=part)
    result = score_notes(notes)
    result.update(seed=seed, part=part)
    return result
