"""Reused token checks and production lookups: how long they last, and what forgets them."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select, update

from medsight.data.synthetic import make_risk_table
from medsight.serve.recent import Recent
from medsight.store.models import ApiToken, User, utcnow

TASK = "heart-risk"


def _row() -> dict[str, object]:
    frame = make_risk_table(1, seed=42).drop(columns=["disease", "patient_id"])
    return json.loads(frame.to_json(orient="records"))[0]


def _predict(service, user: str = "alice"):
    return service.client.post(
        f"/v1/predict/{TASK}", json={"row": _row()}, headers=service.auth(user)
    )


def _revoke_behind_the_service(service, user: str) -> None:
    """Revoke ``user``'s token as the CLI or another process would: in the database only."""
    with service.database.transaction() as session:
        owner = session.scalar(select(User).where(User.username == user))
        session.execute(
            update(ApiToken).where(ApiToken.user_id == owner.id).values(revoked_at=utcnow())
        )


def test_entries_expire_after_their_seconds_and_can_be_forgotten() -> None:
    now = [100.0]
    recent: Recent[int] = Recent(2.0, clock=lambda: now[0])
    recent.put("a", 1)
    now[0] += 1.9
    assert recent.get("a") == 1
    now[0] += 0.2
    assert recent.get("a") is None
    recent.put("a", 2)
    recent.forget("a")
    assert recent.get("a") is None
    off: Recent[int] = Recent(0.0)
    off.put("a", 1)
    assert off.get("a") is None


def test_without_reuse_a_revoked_token_is_refused_at_once(make_service, tabular_bundle: Path):
    service = make_service({TASK: tabular_bundle}, cache_seconds=0)
    assert _predict(service).status_code == 200
    _revoke_behind_the_service(service, "alice")
    assert _predict(service).status_code == 401


def test_a_token_revoked_elsewhere_is_refused_after_cache_seconds(
    make_service, tabular_bundle: Path
) -> None:
    service = make_service({TASK: tabular_bundle}, cache_seconds=30)
    assert _predict(service).status_code == 200
    _revoke_behind_the_service(service, "alice")
    assert _predict(service).status_code == 200  # reused within the 30 s, as documented
    service.client.app.state.medsight.tokens.forget()  # what the 30 s would do
    assert _predict(service).status_code == 401


def test_checking_a_token_notes_its_last_use(make_service, tabular_bundle: Path) -> None:
    service = make_service({TASK: tabular_bundle})
    assert _predict(service, "bob").status_code == 200
    with service.database.transaction() as session:
        owner = session.scalar(select(User).where(User.username == "bob"))
        token = session.scalar(select(ApiToken).where(ApiToken.user_id == owner.id))
        assert token.last_used_at is not None


def test_promotion_through_the_service_is_used_by_the_next_prediction(
    make_service, tabular_bundle: Path
) -> None:
    service = make_service({TASK: tabular_bundle}, cache_seconds=300)
    assert _predict(service).json()["model"]["version"] == 1
    from medsight.registry import ModelRegistry
    from medsight.store.users import local_cli_user

    registry = ModelRegistry.from_settings(service.settings.store)
    with service.database.transaction() as session:  # the same bundle again, as version 2
        registry.register(
            session, tabular_bundle, actor=local_cli_user(session), source="cli", task=TASK
        )
    promoted = service.client.post(
        f"/v1/models/{TASK}/promote", headers=service.auth("sci"), json={"version": 2}
    )
    assert promoted.status_code == 200, promoted.text
    assert _predict(service).json()["model"]["version"] == 2
    rolled = service.client.post(f"/v1/models/{TASK}/rollback", headers=service.auth("sci"))
    assert rolled.status_code == 200, rolled.text
    assert _predict(service).json()["model"]["version"] == 1
