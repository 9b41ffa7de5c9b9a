"""Synthetic clinical tables for tests, docs and examples (no download, fully reproducible)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_risk_table(n: int = 200, *, seed: int = 0, zero_bp_share: float = 0.05) -> pd.DataFrame:
    """A disease-risk table: patient id, age, sex, blood pressure (0 = not measured), lab values,
    a coded chest-pain type, smoking status, and a binary ``disease`` outcome (yes / no) drawn
    from a known logistic model, so a sound pipeline reaches an AUROC of roughly 0.8-0.9.
    """
    rng = np.random.default_rng(seed)
    age = rng.normal(58, 10, n).clip(25, 90).round()
    sex = rng.choice(["female", "male"], n)
    systolic = rng.normal(135, 18, n).round()
    cholesterol = rng.normal(230, 40, n).round()
    biomarker = rng.lognormal(0.0, 0.6, n).round(3)
    chest_pain = rng.choice([1, 2, 3, 4], n, p=[0.2, 0.2, 0.3, 0.3])
    smoker = rng.choice(["never", "former", "current"], n, p=[0.5, 0.3, 0.2])
    logit = (
        -1.0
        + 0.05 * (age - 58)
        + 0.6 * (sex == "male")
        + 0.02 * (systolic - 135)
        + 1.2 * np.log(biomarker)
        + 0.9 * (chest_pain == 4)
        + 0.7 * (smoker == "current")
    )
    disease = rng.random(n) < 1 / (1 + np.exp(-logit))
    systolic[rng.random(n) < zero_bp_share] = 0
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:04d}" for i in range(n)],
            "age": age,
            "sex": sex,
            "systolic_bp": systolic,
            "cholesterol": cholesterol,
            "biomarker": biomarker,
            "chest_pain": chest_pain,
            "smoker": smoker,
            "disease": np.where(disease, "yes", "no"),
        }
    )
