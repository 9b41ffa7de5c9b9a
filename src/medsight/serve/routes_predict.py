"""``POST /v1/predict/{task}`` (one case) and ``POST /v1/predict/{task}/batch`` (table rows).

One endpoint takes every kind of input; the task's production bundle decides which:

- tabular: JSON ``{"row": {column: value}}``;
- image: a multipart upload ``file`` (PNG, JPEG or DICOM; told by content), or the raw image as
  the body with an ``image/*`` or ``application/dicom`` content type;
- ECG: JSON ``{"samples": [...] | [[...], ...], "fs": 300}``, or a multipart upload ``file``
  (CSV or NumPy with a form field ``fs``; DICOM; or two ``file`` parts: a WFDB ``.hea`` and its
  ``.dat``).

Per request: read-only sessions check the token and find the production version; the model
runs outside any transaction; one write transaction (shared with concurrent requests under group
commit, :mod:`medsight.serve.group_commit`) stores the prediction (input fingerprint; raw input
only when ``store_raw_inputs``) and its audit line, and the answer goes out after its commit.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from medsight.errors import DataError
from medsight.serve.auth import Caller, caller
from medsight.serve.errors import UnsupportedMediaError
from medsight.serve.inputs import (
    ECG_SAMPLES_INPUT,
    IMAGE_TYPES,
    Upload,
    bundle_of,
    decode_image,
    ecg_from_files,
    ecg_from_samples,
)
from medsight.serve.predictors import (
    ECG,
    TABULAR,
    EcgPredictor,
    ImagePredictor,
    Outcome,
    Predictor,
    Served,
    TabularPredictor,
)
from medsight.serve.schemas import (
    TASK_NAME_REGEX,
    BatchResponse,
    EcgSamplesRequest,
    Explanation,
    ModelRef,
    PredictionResponse,
    TabularBatchRequest,
    TabularRequest,
)
from medsight.serve.state import ServiceState
from medsight.store import records
from medsight.store.permissions import Action, require

router = APIRouter(prefix="/v1", tags=["predict"])

TaskName = Annotated[
    str, Path(pattern=TASK_NAME_REGEX, description="Task name, e.g. heart-failure.")
]
Explain = Annotated[
    bool,
    Query(description="Add the explanation: top SHAP features, Grad-CAM or ECG attribution."),
]
_TABULAR = TypeAdapter(TabularRequest)
_ECG = TypeAdapter(EcgSamplesRequest)
_MAX_FILES = 2

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        TabularRequest.model_json_schema(),
                        EcgSamplesRequest.model_json_schema(),
                    ]
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "minItems": 1,
                            "maxItems": _MAX_FILES,
                            "description": "An image (PNG, JPEG, DICOM) or an ECG file; two "
                            "parts for a WFDB .hea and .dat pair.",
                        },
                        "fs": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "description": "ECG sampling rate in Hz (CSV and NumPy files).",
                        },
                    },
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "application/dicom": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class Body:
    """A request body read in full (within the size limits), before any model work."""

    def __init__(
        self,
        content_type: str,
        raw: bytes = b"",
        files: list[Upload] | None = None,
        fields: dict[str, str] | None = None,
    ) -> None:
        self.content_type = content_type
        self.raw = raw
        self.files = files or []
        self.fields = fields or {}

    @property
    def is_json(self) -> bool:
        return self.content_type == "application/json" or self.content_type.endswith("+json")


async def read_body(request: Request) -> Body:
    """The body as bytes, or the uploaded files and fields of a multipart form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        return Body(content_type, await request.body())
    form = await request.form(max_files=_MAX_FILES, max_fields=4)
    files: list[Upload] = []
    fields: dict[str, str] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "file":
                    raise DataError(f"unexpected upload field {key!r}; send files as 'file'.")
                files.append(Upload(value.filename or "", await value.read()))
            else:
                fields[key] = value
    finally:
        await form.close()
    return Body(content_type, files=files, fields=fields)


@router.post(
    "/predict/{task}",
    response_model=PredictionResponse,
    summary="Predict one case (table row, image or ECG)",
    openapi_extra=_BODY_DOC,
    responses={
        401: {"description": "No or invalid API token."},
        403: {"description": "The role may not predict."},
        404: {"description": "No production model for the task."},
        413: {"description": "Body larger than the limit."},
        415: {"description": "Not an input this task takes (e.g. not an image)."},
        422: {"description": "The input breaks the model's schema or cannot be read."},
    },
)
async def predict(
    request: Request,
    task: TaskName,
    who: Annotated[Caller, Depends(caller)],
    explain: Explain = False,
) -> PredictionResponse:
    """Label, calibrated probability, threshold, model version, input warnings, explanation."""
    body = await read_body(request)
    state: ServiceState = request.app.state.medsight
    if not explain and body.is_json and state.serves_quick(task):
        # a table row takes about a millisecond of CPU: a thread would only add switching;
        # the event loop serves other requests while this one's transaction commits
        case = _predict(state, who, task, body, explain)
        ids = await asyncio.wrap_future(_store(state, who, case))
        return _answers(ids, case)[0]
    return await run_in_threadpool(predict_case, state, who, task, body, explain)


@router.post(
    "/predict/{task}/batch",
    response_model=BatchResponse,
    summary="Predict several table rows",
    responses={
        401: {"description": "No or invalid API token."},
        404: {"description": "No production model for the task."},
        422: {"description": "A row breaks the schema (the row and column are named)."},
    },
)
def predict_batch(
    request: Request,
    task: TaskName,
    batch: TabularBatchRequest,
    who: Annotated[Caller, Depends(caller)],
    explain: Explain = False,
) -> BatchResponse:
    """One answer per row, in order; the whole batch is refused when any row is invalid."""
    state: ServiceState = request.app.state.medsight
    limit = state.settings.max_batch_rows
    if len(batch.rows) > limit:
        raise DataError(f"{len(batch.rows)} rows in one batch; send at most {limit}.")
    require(who.user, Action.PREDICT)
    served, predictor = state.production(task)
    if not isinstance(predictor, TabularPredictor):
        raise UnsupportedMediaError(
            f"task {task!r} serves a {predictor.kind} model; the batch endpoint takes table rows "
            f"only (send images and ECGs one by one to /v1/predict/{task})."
        )
    rows = [dict(row) for row in batch.rows]
    outcomes = predictor.predict_rows(rows, explain=explain, top_k=state.settings.top_features)
    predicted = Predicted(served, predictor, outcomes)
    return BatchResponse(predictions=_answers(_store(state, who, predicted).result(), predicted))


@dataclass(frozen=True)
class Predicted:
    """Model outcomes not yet stored, and the model that gave them."""

    served: Served
    predictor: Predictor
    outcomes: list[Outcome]


def predict_case(
    state: ServiceState, who: Caller, task: str, body: Body, explain: bool
) -> PredictionResponse:
    """Predict one case from ``body`` with ``task``'s production model and store it (audited).

    The API and the clinician web page both call this (blocking: run it in a thread pool).
    """
    case = _predict(state, who, task, body, explain)
    return _answers(_store(state, who, case).result(), case)[0]


def _predict(state: ServiceState, who: Caller, task: str, body: Body, explain: bool) -> Predicted:
    require(who.user, Action.PREDICT)
    served, predictor = state.production(task)
    return Predicted(served, predictor, [_run(state, predictor, body, explain)])


def _run(state: ServiceState, predictor: Predictor, body: Body, explain: bool) -> Outcome:
    """Parse ``body`` for the predictor's kind and run it."""
    if isinstance(predictor, TabularPredictor):
        request = _json(body, _TABULAR, TABULAR)
        top_k = state.settings.top_features
        return predictor.predict_rows([dict(request.row)], explain=explain, top_k=top_k)[0]
    if isinstance(predictor, ImagePredictor):
        data = _image_bytes(body)
        image, media_type = decode_image(
            data,
            max_pixels=state.settings.max_image_pixels,
            require_deidentified=state.settings.require_deidentified,
        )
        return predictor.predict_image(image, data, media_type, explain=explain)
    assert isinstance(predictor, EcgPredictor)
    if body.is_json:
        samples = _json(body, _ECG, ECG)
        record = ecg_from_samples(samples.samples, samples.fs, samples.lead_names)
        data, input_type = body.raw, ECG_SAMPLES_INPUT
    elif body.files:
        rate = _rate(body.fields.get("fs"))
        record = ecg_from_files(
            body.files, rate, require_deidentified=state.settings.require_deidentified
        )
        data, input_type = bundle_of(body.files, rate)
    else:
        raise UnsupportedMediaError(
            f"an ECG task takes JSON samples or a multipart 'file' upload, not "
            f"{body.content_type or 'an untyped body'}."
        )
    return predictor.predict_record(record, data, input_type, explain=explain)


def _json(body: Body, adapter: TypeAdapter[Any], kind: str) -> Any:
    if not body.is_json:
        raise UnsupportedMediaError(
            f"a {kind} task takes application/json, not {body.content_type or 'an untyped body'}."
        )
    try:
        return adapter.validate_json(body.raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def _image_bytes(body: Body) -> bytes:
    if body.files:
        if len(body.files) != 1:
            raise DataError(f"{len(body.files)} files uploaded; an image task takes one.")
        return body.files[0].data
    if body.content_type in IMAGE_TYPES or body.content_type.startswith("image/"):
        return body.raw
    raise UnsupportedMediaError(
        "an image task takes a multipart upload 'file' (PNG, JPEG or DICOM) or the image as the "
        f"body; got {body.content_type or 'an untyped body'}."
    )


def _rate(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise DataError(f"form field fs={value!r} is not a number (Hz).") from None


def _store(state: ServiceState, who: Caller, predicted: Predicted) -> Future[list[int]]:
    """Store each outcome and its audit line (one transaction, shared with concurrent requests
    under group commit); the future's ids are set after the commit.

    The caller's user is the one checked for this request (at most ``cache_seconds`` ago)."""
    served, kind = predicted.served, predicted.predictor.kind
    entries = [
        records.PredictionEntry(
            task=served.task,
            input_bytes=outcome.input_bytes,
            label=outcome.label,
            probability=outcome.probability,
            output={**outcome.stored_output(kind), "model_version": served.version},
            model_version_id=served.version_id,
            input_type=outcome.input_type,
        )
        for outcome in predicted.outcomes
    ]
    store_raw = state.settings.store.store_raw_inputs
    user, source = who.user, who.source
    return state.store(
        lambda session: records.record_predictions(
            session, user, entries, store_raw=store_raw, source=source
        )
    )


def _answers(ids: list[int], predicted: Predicted) -> list[PredictionResponse]:
    served = predicted.served
    model = ModelRef(
        task=served.task, version=served.version, name=served.name, kind=predicted.predictor.kind
    )
    return [
        _answer(prediction_id, outcome, model)
        for prediction_id, outcome in zip(ids, predicted.outcomes, strict=True)
    ]


def _answer(prediction_id: int, outcome: Outcome, model: ModelRef) -> PredictionResponse:
    return PredictionResponse(
        prediction_id=prediction_id,
        label=outcome.label,
        probability=outcome.probability,
        threshold=outcome.threshold,
        positive_class=outcome.positive_class,
        probabilities=outcome.probabilities,
        finding_thresholds=outcome.finding_thresholds,
        model=model,
        warnings=outcome.warnings,
        explanation=Explanation(**outcome.explanation) if outcome.explanation else None,
    )
