"""Schemathesis against the service's own OpenAPI document: no request may end in a 5xx.

Every operation is fuzzed in-process (ASGI, no network) with schemathesis' examples, coverage
(boundary and invalid values) and random phases, once with an administrator's token and once with
a clinician's, against a service that serves a tabular, an image and an ECG model (the tabular
task has a second, candidate version, so promotion and rollback change state). In the random
phase the path parameters name those served tasks and the first prediction, and half the table
rows are a real row with hostile cells, so the predict endpoints run the models instead of
stopping at 404 or 422. Seeds are fixed (``derandomize``): a failure reproduces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from medsight.data.synthetic import make_risk_table
from medsight.registry import ModelRegistry
from medsight.serve import ServeSettings, create_app
from medsight.store.database import Database
from medsight.store.models import User
from medsight.store.settings import StoreSettings

TASK = "risk"
TASKS = {TASK: "tabular_bundle", "scan": "image_bundle", "rhythm": "ecg_bundle"}
EXAMPLES = 25


def _valid_row() -> dict[str, Any]:
    frame = make_risk_table(1, seed=5).drop(columns=["disease", "patient_id"])
    return json.loads(frame.to_json(orient="records"))[0]


BASE_ROW = _valid_row()
HOSTILE_CELLS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", " ", "NaN", "inf", "-1e309", "0x10", "male", "\x00"]),
)


def _hostile_rows() -> st.SearchStrategy[dict[str, Any]]:
    """The valid row with some cells replaced by odd values, some columns dropped, some added."""
    columns = sorted(BASE_ROW)
    changed = st.dictionaries(st.sampled_from(columns), HOSTILE_CELLS, max_size=len(columns))
    dropped = st.sets(st.sampled_from(columns), max_size=2)
    extra = st.dictionaries(st.text(max_size=12), HOSTILE_CELLS, max_size=2)

    def build(parts: tuple[dict, set, dict]) -> dict[str, Any]:
        update, drop, add = parts
        row = {k: v for k, v in {**BASE_ROW, **update}.items() if k not in drop}
        return {**add, **row}

    return st.tuples(changed, dropped, extra).map(build)


def _openapi_schema() -> Any:
    """The schema, loaded from an app on an unopened database (the document needs none).

    Loaded at import and each test passes its own service's app to the call, rather than
    ``schemathesis.pytest.from_fixture``: its runner sets ``Function._nodeid``, a private pytest
    attribute that pytest 9 no longer has (AttributeError, schemathesis 4.32).
    """
    settings = ServeSettings(store=StoreSettings(data_dir=Path("unused")))
    app = create_app(settings, Database("sqlite://"))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = _openapi_schema()
# A DICOM upload is bytes like any file; schemathesis only lacks the media-type name (the
# registration is process-wide and only adds a serializer).
schemathesis.serializer.alias("application/dicom", "application/octet-stream")


@schema.hook
def before_generate_path_parameters(_context: Any, strategy: st.SearchStrategy) -> Any:
    """Random-phase path parameters name a served task and the first prediction."""

    def steer(pair: tuple[Any, str]) -> Any:
        parameters, task = pair
        if not isinstance(parameters, dict):
            return parameters
        steered = dict(parameters)
        if "task" in steered:
            steered["task"] = task
        if "prediction_id" in steered:
            steered["prediction_id"] = 1
        return steered

    return st.tuples(strategy, st.sampled_from(sorted(TASKS))).map(steer)


@schema.hook
def flatmap_body(_context: Any, body: Any) -> st.SearchStrategy:
    """Half the table rows become the model's real columns with hostile cells."""
    if isinstance(body, dict) and set(body) == {"row"}:
        return st.one_of(st.just(body), _hostile_rows().map(lambda row: {"row": row}))
    if isinstance(body, dict) and set(body) == {"rows"}:
        rows = st.lists(_hostile_rows(), min_size=1, max_size=3)
        return st.one_of(st.just(body), rows.map(lambda rows: {"rows": rows}))
    return st.just(body)


@dataclass
class Target:
    """The app under test and the caller's headers."""

    app: Any
    headers: dict[str, str]


@pytest.fixture(params=["admin", "alice"], ids=["admin", "clinician"])
def target(request, make_service, tabular_bundle: Path) -> Target:
    """Three served tasks, a candidate v2 of the tabular one, and prediction 1 (alice's)."""
    service = make_service({task: request.getfixturevalue(name) for task, name in TASKS.items()})
    registry = ModelRegistry.from_settings(service.settings.store)
    with service.database.transaction() as session:
        sci = session.query(User).filter_by(username="sci").one()
        registry.register(session, tabular_bundle, actor=sci, source="t", task=TASK)
    first = service.client.post(
        f"/v1/predict/{TASK}", json={"row": BASE_ROW}, headers=service.auth("alice")
    )
    assert first.status_code == 200, first.text
    assert first.json()["prediction_id"] == 1
    return Target(service.client.app, service.auth(request.param))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_5xx(case, target: Target) -> None:
    case.call_and_validate(app=target.app, headers=target.headers, checks=[not_a_server_error])


def test_promote_huge_version_is_not_5xx(make_service, tabular_bundle: Path) -> None:
    service = make_service({TASK: tabular_bundle})
    client = TestClient(service.client.app, raise_server_exceptions=False)
    reply = client.post(
        f"/v1/models/{TASK}/promote", json={"version": 2**63}, headers=service.auth("admin")
    )
    assert reply.status_code == 422, reply.text


@pytest.fixture
def risk_service(make_service, tabular_bundle: Path):
    """One service for all of a Hypothesis test's examples."""
    return make_service({TASK: tabular_bundle})


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(_hostile_rows(), min_size=1, max_size=3), explain=st.booleans())
def test_hostile_rows_answer_200_or_422(risk_service, rows, explain: bool) -> None:
    """Beyond "no 5xx": a row is either predicted or refused with 422, alone or in a batch."""
    client = TestClient(risk_service.client.app, raise_server_exceptions=False)
    params = {"explain": str(explain).lower()}
    headers = risk_service.auth("alice")
    one = client.post(f"/v1/predict/{TASK}", json={"row": rows[0]}, params=params, headers=headers)
    assert one.status_code in (200, 422), one.text
    batch = client.post(
        f"/v1/predict/{TASK}/batch", json={"rows": rows}, params=params, headers=headers
    )
    assert batch.status_code in (200, 422), batch.text
