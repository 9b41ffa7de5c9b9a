"""Request and response bodies of the API (pydantic models; they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medsight.registry.bundles import TASK_PATTERN

TASK_NAME_REGEX = f"^{TASK_PATTERN.pattern}$"
"""A task name as the registry allows it, anchored (OpenAPI patterns match anywhere)."""

Cell = float | int | str | bool | None
"""One table cell as JSON sends it; ``null`` (or a schema missing code) means empty."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------ requests


class TabularRequest(_Body):
    """One table row for a tabular task: column name -> value, checked against the schema."""

    row: dict[str, Cell] = Field(examples=[{"age": 61, "sex": "male", "systolic_bp": 142}])


class TabularBatchRequest(_Body):
    """Several rows; the whole batch is refused when any row breaks the schema."""

    rows: list[dict[str, Cell]] = Field(min_length=1)


class EcgSamplesRequest(_Body):
    """An ECG as numbers: one list (one lead) or one list per lead, in millivolts, at ``fs`` Hz."""

    samples: list[float] | list[list[float]] = Field(min_length=1)
    fs: float = Field(ge=10, le=20_000, description="Sampling rate in Hz (10 to 20,000).")
    lead_names: list[str] | None = Field(
        default=None, description="One name per lead (default lead1, lead2, ...)."
    )


class TokenRequest(_Body):
    """Username and password, exchanged for a new API token."""

    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)
    token_name: str = Field(default="api", min_length=1, max_length=100)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)


class FeedbackRequest(_Body):
    """A clinician's verdict on their own prediction."""

    verdict: Literal["confirmed", "corrected"]
    label: str | None = Field(
        default=None,
        max_length=200,
        description=(
            "The correct class; for a multi-label model the present findings joined by '|' "
            "(any order) or 'none'. Omitted for a confirmation."
        ),
    )
    comment: str = Field(default="", max_length=2000)


class PromoteRequest(_Body):
    """The version to put in production."""

    version: int = Field(ge=1, le=2**31 - 1)  # the database column is a 32-bit integer


# ------------------------------------------------------------------------------ responses


class ModelRef(BaseModel):
    """The model version that answered."""

    task: str
    version: int
    name: str
    kind: str = Field(description="Bundle kind: tabular-classification, image-classification...")


class FeatureContribution(BaseModel):
    """One column's push on the probability (SHAP, in probability points)."""

    feature: str
    value: Any = None
    shap: float


class Explanation(BaseModel):
    """Why the model answered so: top SHAP features, a Grad-CAM overlay or an ECG attribution."""

    kind: Literal["shap", "gradcam", "ecg_attribution"]
    top_features: list[FeatureContribution] | None = None
    base_probability: float | None = None
    image_png_base64: str | None = Field(default=None, description="PNG, base64-encoded.")
    attribution: list[float] | None = Field(
        default=None, description="ECG: positive evidence per segment of the window shown."
    )
    segment_seconds: float | None = None
    window_start_seconds: float | None = None


class PredictionResponse(BaseModel):
    """One case's answer. ``probability`` is the positive class's probability for binary models
    (compare with ``threshold``) and the predicted label's for multi-class models."""

    prediction_id: int
    label: str
    probability: float | None
    threshold: float | None
    positive_class: str | None = None
    probabilities: dict[str, float]
    finding_thresholds: dict[str, float] | None = Field(
        default=None,
        description="Multi-label models: each finding is present when its probability is >= "
        "its threshold here.",
    )
    model: ModelRef
    warnings: list[str]
    explanation: Explanation | None = None


class BatchResponse(BaseModel):
    predictions: list[PredictionResponse]


class TokenResponse(BaseModel):
    """A new API token: shown once, send it as ``Authorization: Bearer <token>``."""

    token: str
    token_type: Literal["bearer"] = "bearer"
    username: str
    role: str
    expires_at: datetime | None


class FeedbackResponse(BaseModel):
    id: int
    prediction_id: int
    verdict: str
    label: str
    comment: str
    created_at: datetime


class PredictionSummary(BaseModel):
    """A stored prediction, without its output details."""

    id: int
    task: str
    label: str
    probability: float | None
    user_id: int
    model_version: int | None
    input_sha256: str
    input_type: str
    created_at: datetime


class PredictionRecord(PredictionSummary):
    """A stored prediction with its stored output (no PHI) and its feedback."""

    output: dict[str, Any]
    feedback: list[FeedbackResponse]


class PredictionList(BaseModel):
    predictions: list[PredictionSummary]


class ModelVersionInfo(BaseModel):
    task: str
    version: int
    stage: str
    name: str
    created_at: datetime
    promoted_at: datetime | None
    archived_reason: str | None


class ModelList(BaseModel):
    models: list[ModelVersionInfo]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: str
    production: dict[str, int] = Field(description="Task -> version in production.")
