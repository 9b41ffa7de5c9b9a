"""Image and ECG prediction through the API: uploads told by content, explanations, limits."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_helpers import ecg_signal, png_bytes
from sqlalchemy import select

from medsight.store.models import Prediction

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def service(make_service, image_bundle: Path, ecg_bundle: Path):
    return make_service({"breast-us": image_bundle, "rhythm": ecg_bundle})


def test_png_upload_with_gradcam(service) -> None:
    files = {"file": ("scan.png", png_bytes(), "image/png")}
    reply = service.client.post(
        "/v1/predict/breast-us?explain=true", files=files, headers=service.auth("alice")
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["label"] in ("benign", "malignant") and body["threshold"] == 0.5
    assert body["probability"] == pytest.approx(body["probabilities"]["malignant"])
    assert body["model"]["kind"] == "image-classification" and body["model"]["version"] == 1
    explanation = body["explanation"]
    assert explanation["kind"] == "gradcam"
    png = base64.b64decode(explanation["image_png_base64"])
    assert png.startswith(PNG_SIGNATURE) and Image.open(io.BytesIO(png)).size[0] > 28
    with service.database.transaction() as session:
        stored = session.get(Prediction, body["prediction_id"])
        assert stored is not None and stored.input_type == "image/png"
        assert stored.raw_input is None  # raw inputs are off by default
        assert "scan" not in json.dumps(stored.output)  # no file names in the stored output


def test_image_input_warnings_and_raw_body(service) -> None:
    colour = png_bytes(value=0.95, size=6, mode="RGB")
    reply = service.client.post(
        "/v1/predict/breast-us",
        content=colour,
        headers={**service.auth("alice"), "content-type": "image/png"},
    )
    assert reply.status_code == 200, reply.text
    warnings = " ".join(reply.json()["warnings"])
    assert "3-channel" in warnings and "small image" in warnings and "intensity" in warnings


def test_non_image_and_oversized_uploads(service, make_service, image_bundle: Path) -> None:
    files = {"file": ("notes.png", b"%PDF-1.4 not an image at all", "image/png")}
    reply = service.client.post("/v1/predict/breast-us", files=files, headers=service.auth("alice"))
    assert reply.status_code == 415 and "not a PNG, JPEG or DICOM" in reply.json()["detail"]
    broken = {"file": ("x.png", png_bytes()[:40], "image/png")}
    reply = service.client.post(
        "/v1/predict/breast-us", files=broken, headers=service.auth("alice")
    )
    assert reply.status_code == 422 and "damaged" in reply.json()["detail"]
    reply = service.client.post(
        "/v1/predict/breast-us", json={"row": {}}, headers=service.auth("alice")
    )
    assert reply.status_code == 415
    small = make_service({"breast-us": image_bundle}, max_upload_bytes=4096)
    big = {"file": ("big.png", PNG_SIGNATURE + bytes(8192), "image/png")}
    reply = small.client.post("/v1/predict/breast-us", files=big, headers=small.auth("alice"))
    assert reply.status_code == 413

    def chunks():  # no Content-Length: counted while streaming
        yield PNG_SIGNATURE
        for _ in range(8):
            yield bytes(1024)

    reply = small.client.post(
        "/v1/predict/breast-us",
        content=chunks(),
        headers={**small.auth("alice"), "content-type": "multipart/form-data; boundary=x"},
    )
    assert reply.status_code == 413
    with small.database.transaction() as session:
        assert session.scalars(select(Prediction)).all() == []


def test_ecg_from_json_samples_with_attribution(service) -> None:
    signal = ecg_signal(fs=300, seconds=12)
    body = {"samples": [signal.round(4).tolist()], "fs": 300}
    reply = service.client.post(
        "/v1/predict/rhythm?explain=true", json=body, headers=service.auth("alice")
    )
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["label"] in ("N", "A", "O", "~") and answer["threshold"] is None
    assert answer["probability"] == pytest.approx(max(answer["probabilities"].values()))
    explanation = answer["explanation"]
    assert explanation["kind"] == "ecg_attribution"
    assert len(explanation["attribution"]) == 40  # a 10 s window in 0.25 s segments
    assert max(explanation["attribution"]) == pytest.approx(1.0)
    assert base64.b64decode(explanation["image_png_base64"]).startswith(PNG_SIGNATURE)
    flat = {"samples": [0.0] * 3000, "fs": 300}
    reply = service.client.post("/v1/predict/rhythm", json=flat, headers=service.auth("alice"))
    assert reply.status_code == 200 and reply.json()["label"] == "unreadable"
    assert reply.json()["probability"] is None and reply.json()["warnings"]


def test_ecg_from_csv_upload(service) -> None:
    signal = ecg_signal(fs=250, seconds=12)
    csv = "ECG\n" + "\n".join(f"{v:.4f}" for v in signal)
    files = {"file": ("record.csv", csv.encode(), "text/csv")}
    reply = service.client.post(
        "/v1/predict/rhythm", files=files, data={"fs": "250"}, headers=service.auth("alice")
    )
    assert reply.status_code == 200, reply.text
    same = service.client.post(
        "/v1/predict/rhythm",
        json={"samples": [[float(f"{v:.4f}") for v in signal]], "fs": 250},
        headers=service.auth("alice"),
    )
    assert reply.json()["probabilities"] == pytest.approx(same.json()["probabilities"], abs=1e-5)
    reply = service.client.post("/v1/predict/rhythm", files=files, headers=service.auth("alice"))
    assert reply.status_code == 422 and "sampling rate" in reply.json()["detail"]
    image = {"file": ("x.png", png_bytes(), "image/png")}
    reply = service.client.post(
        "/v1/predict/rhythm", files=image, data={"fs": "250"}, headers=service.auth("alice")
    )
    assert reply.status_code == 422 and "/tmp" not in reply.json()["detail"]
    bad = {"samples": [[1.0, 2.0], [1.0]], "fs": 250}
    reply = service.client.post("/v1/predict/rhythm", json=bad, headers=service.auth("alice"))
    assert reply.status_code == 422
    assert np.isfinite(signal).all()
