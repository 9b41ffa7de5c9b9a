"""The clinician web page: sign in, enter a case, read the answer, confirm or correct it.

Server-rendered with Jinja2 (``templates/``) and one stylesheet (``static/medsight.css``); no
scripts, no build step, nothing fetched from elsewhere, so it works offline. Pages:

==============================  ==============================================================
``/login``                      sign in (username and password; audited)
``/cases/new``                  pick a task in production; a form fitted to its bundle kind
``/cases/{id}``                 label, probability and threshold, warnings, explanation, feedback
``/cases``                      history: a clinician's own cases (everyone's for data scientists
                                and admins, with the owner)
==============================  ==============================================================

Predictions go through :func:`medsight.serve.routes_predict.predict_case`, the code the API runs,
and every read and write through the store functions, so the page is audited like the API.
Explanations are not stored (they may show patient values); the one computed with a prediction is
kept in memory for a while (:class:`RecentExplanations`) for the case page that follows it.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from medsight.bundle.prediction import NO_FINDING
from medsight.errors import DataError, MedsightError
from medsight.serve import sessions
from medsight.serve.auth import Caller, client_source
from medsight.serve.errors import status_of
from medsight.serve.inputs import Upload
from medsight.serve.predictors import ECG, IMAGE, TABULAR, TabularPredictor, bundle_kind
from medsight.serve.routes_cases import MAX_ID
from medsight.serve.routes_predict import Body, predict_case
from medsight.serve.schemas import Explanation
from medsight.serve.state import ServiceState
from medsight.serve.throttle import LoginThrottled
from medsight.store import records
from medsight.store.errors import NotFoundError, PermissionDenied
from medsight.store.models import ModelVersion, Prediction, Stage, User
from medsight.store.permissions import Action, can
from medsight.store.users import require_token_user

HERE: Final = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

HISTORY_PAGE: Final = 50
MAX_FORM_FIELDS: Final = 500
SECURITY_HEADERS: Final = {
    # no scripts at all; styles and images from this server (explanations are data: URLs)
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # pages show patient data: keep them out of caches
}
_ROW_PREFIX: Final = re.compile(r"^rows?: row 1, ")
KIND_LABELS: Final = {TABULAR: "table row", IMAGE: "image", ECG: "ECG"}


def install(app: FastAPI) -> None:
    """Add the pages, the stylesheet at ``/static`` and the explanation memory to ``app``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.state.medsight_web = RecentExplanations()


class RecentExplanations:
    """Explanations of recent predictions, in memory only, for their owner's case page.

    A small bounded, expiring map written here (no cache package is a dependency): entries go
    after ``ttl_s`` seconds or when more than ``size`` are held, and at restart.
    """

    def __init__(self, size: int = 256, ttl_s: float = 1800.0) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._items: OrderedDict[int, tuple[int, float, Explanation]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, prediction_id: int, user_id: int, explanation: Explanation) -> None:
        with self._lock:
            self._items[prediction_id] = (user_id, time.monotonic() + self.ttl_s, explanation)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, prediction_id: int, user_id: int) -> Explanation | None:
        with self._lock:
            found = self._items.get(prediction_id)
            if found is None:
                return None
            owner, expires, explanation = found
            if time.monotonic() > expires:
                del self._items[prediction_id]
                return None
        return explanation if owner == user_id else None


# ----------------------------------------------------------------------------- helpers


def _state(request: Request) -> ServiceState:
    return request.app.state.medsight


def _render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    who: Caller | None = None,
    status: int = 200,
) -> HTMLResponse:
    page = {
        "user": who.user if who else None,
        "csrf": sessions.csrf_for(who.token) if who else "",
        "csrf_field": sessions.CSRF_FIELD,
        **context,
    }
    return templates.TemplateResponse(
        request, name, page, status_code=status, headers=SECURITY_HEADERS
    )


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def _to_login(request: Request) -> RedirectResponse:
    response = _redirect("/login")
    if sessions.session_token(request):  # a dead session: forget its cookie
        sessions.clear_session_cookie(response, secure=sessions.is_https(request))
    return response


def _not_found(request: Request, who: Caller, what: str) -> HTMLResponse:
    context = {"title": "Not found", "message": f"There is no {what} that you can open."}
    return _render(request, "error.html", context, who=who, status=404)


def _percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value * 100:.1f}%"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


templates.env.filters["percent"] = _percent
templates.env.filters["when"] = _when


# ----------------------------------------------------------------------------- sign in / out


@router.get("/", response_model=None)
def home(request: Request) -> Response:
    return _redirect("/cases/new" if sessions.current_caller(request) else "/login")


@router.get("/login", response_model=None)
def login_page(request: Request) -> Response:
    if sessions.current_caller(request) is not None:
        return _redirect("/cases/new")
    return _login_form(request)


def _login_form(
    request: Request, *, error: str = "", username: str = "", status: int = 200
) -> HTMLResponse:
    token = sessions.new_login_csrf()
    context = {"title": "Sign in", "error": error, "username": username, "login_csrf": token}
    response = _render(request, "login.html", context, status=status)
    sessions.set_login_csrf_cookie(response, token, secure=sessions.is_https(request))
    return response


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=8)
    try:
        sessions.check_csrf(
            request.cookies.get(sessions.LOGIN_CSRF_COOKIE), form.get(sessions.CSRF_FIELD)
        )
    except sessions.CsrfError as exc:
        return _login_form(request, error=str(exc), status=403)
    username = _text(form, "username")[:150]
    password = _text(form, "password")[:1024]
    if not username or not password:
        return _login_form(
            request, error="Enter your username and password.", username=username, status=400
        )
    try:
        token = await run_in_threadpool(
            sessions.sign_in, _state(request), username, password, source=client_source(request)
        )
    except LoginThrottled as exc:
        response = _login_form(request, error=str(exc), username=username, status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if token is None:
        return _login_form(
            request, error="Wrong username or password.", username=username, status=401
        )
    response = _redirect("/cases/new")
    sessions.set_session_cookie(response, token, secure=sessions.is_https(request))
    response.delete_cookie(sessions.LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", response_model=None)
async def logout(request: Request) -> Response:
    token = sessions.session_token(request)
    form = await request.form(max_files=0, max_fields=4)
    if token is None:
        return _to_login(request)
    try:
        sessions.check_csrf(sessions.csrf_for(token), form.get(sessions.CSRF_FIELD))
    except sessions.CsrfError as exc:
        return _render(
            request, "error.html", {"title": "Not signed out", "message": str(exc)}, status=403
        )
    await run_in_threadpool(
        sessions.sign_out, _state(request), token, source=client_source(request)
    )
    response = _redirect("/login")
    sessions.clear_session_cookie(response, secure=sessions.is_https(request))
    return response


# ----------------------------------------------------------------------------- new case


@router.get("/cases/new", response_model=None)
def new_case(request: Request, task: str | None = None) -> Response:
    who = sessions.current_caller(request)
    if who is None:
        return _to_login(request)
    return _case_form(request, who, task)


def _case_form(
    request: Request,
    who: Caller,
    task: str | None,
    *,
    error: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    state = _state(request)
    with state.read() as session:
        tasks = _production_tasks(state, session)
        if task is None and len(tasks) == 1:
            task = tasks[0]["task"]
        chosen = next((t for t in tasks if t["task"] == task), None)
        form: dict[str, Any] | None = None
        if chosen is not None:
            try:
                _, predictor = state.predictor(session, chosen["task"])
                form = _form_of(predictor)
            except MedsightError as exc:
                error, status = str(exc), status_of(exc)
    if task is not None and chosen is None and not error:
        error, status = f"No model is in production for task {task!r}.", 404
    context = {
        "title": "New case",
        "tasks": tasks,
        "chosen": chosen,
        "form": form,
        "error": error,
        "values": values or {},
        "may_predict": can(who.user, Action.PREDICT),
    }
    return _render(request, "new_case.html", context, who=who, status=status)


def _production_tasks(state: ServiceState, session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.stage == Stage.PRODUCTION)
        .order_by(ModelVersion.task)
    ).all()
    tasks = []
    for row in rows:
        try:
            kind = bundle_kind(state.registry.path_of(row))
        except MedsightError:
            kind = ""
        tasks.append(
            {
                "task": row.task,
                "version": row.version,
                "name": row.name,
                "kind": kind,
                "kind_label": KIND_LABELS.get(kind, kind or "unknown"),
            }
        )
    return tasks


def _form_of(predictor: Any) -> dict[str, Any]:
    """What the case form needs to know about the model's input."""
    if isinstance(predictor, TabularPredictor):
        schema = predictor.bundle.schema
        fields = []
        for name in schema.feature_columns:
            spec = schema.columns[name]
            fields.append(
                {
                    "name": name,
                    "key": f"col:{name}",
                    "numeric": spec.role == "numeric",
                    "min": _number(spec.min),
                    "max": _number(spec.max),
                    "categories": spec.categories or [],
                    "missing": [
                        _number(v) if isinstance(v, int | float) else str(v)
                        for v in spec.missing_values
                    ],
                }
            )
        return {"kind": TABULAR, "fields": fields, "classes": predictor.classes}
    if predictor.kind == IMAGE:
        channels, height, width = predictor.bundle.input_shape
        return {
            "kind": IMAGE,
            "classes": predictor.classes,
            "hint": f"The model sees {width}×{height} pixel images "
            f"({'greyscale' if channels == 1 else 'colour'}); larger ones are resized.",
        }
    metadata = predictor.bundle.metadata
    return {
        "kind": ECG,
        "classes": predictor.classes,
        "fs": _number(predictor.bundle.fs),
        "min_seconds": _number(metadata.get("min_seconds")),
    }


def _number(value: Any) -> str:
    if value is None:
        return ""
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


@router.post("/cases/new", response_model=None)
async def submit_case(request: Request) -> Response:
    who = sessions.current_caller(request)
    if who is None:
        return _to_login(request)
    form = await request.form(max_files=2, max_fields=MAX_FORM_FIELDS)
    values: dict[str, str] = {}
    try:
        sessions.check_csrf(sessions.csrf_for(who.token), form.get(sessions.CSRF_FIELD))
        task = _text(form, "task")
        state = _state(request)
        with state.read() as session:
            _, predictor = state.predictor(session, task)
        body, values = await _body_of(predictor, form)
        explain = form.get("explain") == "on"
        answer = await run_in_threadpool(predict_case, state, who, task, body, explain)
    except MedsightError as exc:
        return _case_form(
            request,
            who,
            _text(form, "task") or None,
            error=_one_case_message(str(exc)),
            values=values or {k: v for k, v in form.items() if isinstance(v, str)},
            status=status_of(exc),
        )
    finally:
        await form.close()
    if answer.explanation is not None:
        request.app.state.medsight_web.put(answer.prediction_id, who.user.id, answer.explanation)
    return _redirect(f"/cases/{answer.prediction_id}")


async def _body_of(predictor: Any, form: FormData) -> tuple[Body, dict[str, str]]:
    """The request body the API would have received for this form, and the typed values."""
    if isinstance(predictor, TabularPredictor):
        schema = predictor.bundle.schema
        values = {f"col:{name}": _text(form, f"col:{name}") for name in schema.feature_columns}
        row = {
            name: _cell(values[f"col:{name}"], numeric=schema.columns[name].role == "numeric")
            for name in schema.feature_columns
        }
        return Body("application/json", raw=json.dumps({"row": row}).encode()), values
    files = [
        Upload(item.filename or "", await item.read())
        for item in form.getlist("file")
        if isinstance(item, UploadFile) and (item.filename or item.size)
    ]
    if not files:
        raise DataError("Choose a file to upload.")
    fields = {"fs": _text(form, "fs")} if predictor.kind == ECG else {}
    return Body("multipart/form-data", files=files, fields=fields), fields


def _cell(text: str, *, numeric: bool) -> float | str | None:
    """A form value as the API's JSON would carry it: empty -> null, numbers as numbers (text
    that is not a finite number stays text, and the schema check names the column)."""
    if not text:
        return None
    if numeric:
        try:
            number = float(text.replace(",", ".")) if text.count(",") == 1 else float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return text


def _one_case_message(message: str) -> str:
    """A schema error without the batch wording: "row: row 1, column 'age': ..." becomes
    "Column 'age': ..." (the page sends one row)."""
    message = _ROW_PREFIX.sub("", message)
    return message[:1].upper() + message[1:]


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


# ----------------------------------------------------------------------------- one case


@router.get("/cases/{prediction_id}", response_model=None)
def case_page(request: Request, prediction_id: int) -> Response:
    who = sessions.current_caller(request)
    if who is None:
        return _to_login(request)
    return _case_view(request, who, prediction_id)


def _case_view(
    request: Request, who: Caller, prediction_id: int, *, error: str = "", status: int = 200
) -> HTMLResponse:
    if not 1 <= prediction_id <= MAX_ID:
        return _not_found(request, who, f"case {prediction_id}")
    state = _state(request)
    try:
        with state.write() as session:
            user = require_token_user(session, who.token)
            row = records.get_prediction(session, user, prediction_id, source=who.source)
            context = _case_context(row, user)
    except (NotFoundError, PermissionDenied):
        return _not_found(request, who, f"case {prediction_id}")
    explanation = request.app.state.medsight_web.get(prediction_id, who.user.id)
    context.update(title=f"Case {prediction_id}", explanation=_explanation_view(explanation))
    context["error"] = error
    return _render(request, "case.html", context, who=who, status=status)


def _findings(
    label: str, ranked: list[tuple[str, float]], thresholds: dict[str, float] | None
) -> list[dict[str, Any]]:
    """A multi-label case's findings in ``ranked`` order, each with its threshold and whether
    the model called it present (read from the stored label: the decision as it was made)."""
    if not thresholds:
        return []
    called = set(label.split("|"))
    return [
        {"name": n, "probability": p, "threshold": thresholds.get(n), "present": n in called}
        for n, p in ranked
    ]


def _finding_choices(
    label: str, classes: list[str], output: dict[str, Any]
) -> list[dict[str, Any]]:
    """A multi-label case's findings in the model's order, each ticked when the model called it
    present; empty for other models."""
    if not records.multi_label_output(output):
        return []
    called = set(label.split("|"))
    return [{"name": name, "present": name in called} for name in classes]


def _case_context(row: Prediction, user: User) -> dict[str, Any]:
    output = row.output or {}
    classes = [str(c) for c in output.get("classes") or []]
    probabilities = output.get("probabilities") or {}
    ranked = sorted(probabilities.items(), key=lambda kv: -float(kv[1] or 0))
    model = row.model_version
    return {
        "case": {
            "id": row.id,
            "task": row.task,
            "label": row.label,
            "probability": row.probability,
            "threshold": output.get("threshold"),
            "positive_class": output.get("positive_class"),
            "created_at": row.created_at,
            "input_type": row.input_type,
            "input_sha256": row.input_sha256,
            "kind": output.get("kind", ""),
            "explained": bool(output.get("explained")),
        },
        "model": {"name": model.name, "version": model.version} if model else None,
        "warnings": [str(w) for w in output.get("warnings") or []],
        "probabilities": ranked,
        "findings": _findings(row.label, ranked, output.get("finding_thresholds")),
        "corrections": [c for c in classes if c != row.label],
        # multi-label: a correction is the set of present findings, ticked from the model's call
        "finding_choices": _finding_choices(row.label, classes, output),
        "feedback": [
            {
                "verdict": str(f.verdict),
                "label": f.label,
                "comment": f.comment,
                "created_at": f.created_at,
            }
            for f in row.feedback
        ],
        "may_answer": row.user_id == user.id and can(user, Action.FEEDBACK_WRITE),
    }


def _explanation_view(explanation: Explanation | None) -> dict[str, Any] | None:
    """The explanation for the template; SHAP bars scaled to the largest push."""
    if explanation is None:
        return None
    view: dict[str, Any] = {
        "kind": explanation.kind,
        "image": explanation.image_png_base64,
        "base_probability": explanation.base_probability,
    }
    features = explanation.top_features or []
    if features:
        largest = max(abs(f.shap) for f in features) or 1.0
        view["features"] = [
            {
                "feature": f.feature,
                "value": "empty" if f.value is None else _value_text(f.value),
                "shap": f.shap,
                "width": round(45 * abs(f.shap) / largest, 2),
                "up": f.shap >= 0,
            }
            for f in features
        ]
    return view


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@router.post("/cases/{prediction_id}/feedback", response_model=None)
async def case_feedback(request: Request, prediction_id: int) -> Response:
    who = sessions.current_caller(request)
    if who is None:
        return _to_login(request)
    if not 1 <= prediction_id <= MAX_ID:
        return _not_found(request, who, f"case {prediction_id}")
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)  # one per finding ticked
    try:
        sessions.check_csrf(sessions.csrf_for(who.token), form.get(sessions.CSRF_FIELD))
    except sessions.CsrfError as exc:
        return _case_view(request, who, prediction_id, error=str(exc), status=403)
    verdict = _text(form, "verdict")
    label = _text(form, "label") if verdict == "corrected" else None
    if verdict == "corrected" and form.get("findings_form"):
        # the ticked findings; the store checks them and writes them as the model does
        ticked = [str(value) for value in form.getlist("finding")]
        label = "|".join(ticked) or NO_FINDING
    comment = _text(form, "comment")
    try:
        await run_in_threadpool(
            _add_feedback, _state(request), who, prediction_id, verdict, label, comment
        )
    except (NotFoundError, PermissionDenied):
        return _not_found(request, who, f"case {prediction_id}")
    except MedsightError as exc:
        return _case_view(request, who, prediction_id, error=str(exc), status=status_of(exc))
    return _redirect(f"/cases/{prediction_id}#feedback")


def _add_feedback(
    state: ServiceState,
    who: Caller,
    prediction_id: int,
    verdict: str,
    label: str | None,
    comment: str,
) -> None:
    with state.write() as session:
        user = require_token_user(session, who.token)
        records.add_feedback(
            session,
            user,
            prediction_id,
            verdict=verdict,
            label=label,
            comment=comment,
            source=who.source,
        )


# ----------------------------------------------------------------------------- history


@router.get("/cases", response_model=None)
def history(request: Request, offset: int = 0) -> Response:
    who = sessions.current_caller(request)
    if who is None:
        return _to_login(request)
    offset = min(max(offset, 0), 10_000_000)
    state = _state(request)
    with state.write() as session:
        user = require_token_user(session, who.token)
        everyone = can(user, Action.PREDICTION_READ_ALL)
        rows = records.list_predictions(
            session, user, source=who.source, limit=HISTORY_PAGE, offset=offset
        )
        owners = {}
        if everyone:
            ids = {r.user_id for r in rows}
            owners = dict(
                session.execute(select(User.id, User.username).where(User.id.in_(ids))).all()
            )
        cases = [
            {
                "id": r.id,
                "task": r.task,
                "label": r.label,
                "probability": r.probability,
                "created_at": r.created_at,
                "owner": owners.get(r.user_id, ""),
                "feedback": _feedback_summary(r),
            }
            for r in rows
        ]
    context = {
        "title": "Cases",
        "cases": cases,
        "everyone": everyone,
        "offset": offset,
        "newer": max(offset - HISTORY_PAGE, 0) if offset else None,
        "older": offset + HISTORY_PAGE if len(cases) == HISTORY_PAGE else None,
    }
    return _render(request, "cases.html", context, who=who)


def _feedback_summary(row: Prediction) -> dict[str, str] | None:
    if not row.feedback:
        return None
    last = row.feedback[-1]
    return {"verdict": str(last.verdict), "label": last.label}
