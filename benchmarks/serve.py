"""Service speed benchmark: ``medsight serve`` on loopback, driven by concurrent clients.

Run from the project root in .venv::

    python benchmarks/serve.py                      # 8 clients, 60 s per endpoint
    python benchmarks/serve.py --seconds 5          # a smoke run
    python benchmarks/serve.py --rounds 3           # each endpoint 3 times: median and range
    python benchmarks/serve.py --tabular-bundle RUN/bundle --image-bundle RUN/bundle

It builds a data directory in a temporary folder: trains the default tabular model on WDBC
(scikit-learn's copy) and a small CNN for a few epochs on BreastMNIST (``../shared/data``) or, when
that is absent, the generated phantom images; registers and promotes both; creates a clinician
and an API token; starts ``medsight serve`` as a subprocess on a free loopback port; and, from
another process, sends requests over ``--clients`` keep-alive connections (light asyncio
clients on raw sockets, so the load generator does not take the server's CPU) for
``--seconds`` per endpoint after a warm-up that is not counted: tabular predict, image predict,
image predict with Grad-CAM. A second server on the same data, with group commit on (concurrent
predictions in shared transactions), takes the same tabular load in the same run
(``tabular_predict_with_group_commit``), unless ``--no-group-commit-comparison``.

By default each client sends its next request as soon as it has the answer (a closed loop: the
server is saturated, and by Little's law the median latency is about ``clients`` times the
server's time per request). ``--rate R`` paces each client at R requests per second instead and
counts each latency from the moment its request was due, to see latency at a given load.
A ``baseline`` block gives the bare bundle's in-process time for one row, so the service's own
share is visible. On a shared machine one run can be lucky or unlucky (the same code gave 406 to
795 requests/s here): ``--rounds R`` drives every endpoint R times, in turn, and reports the
median of each figure with every round's figures under ``rounds``.

Progress goes to stderr; the last line of stdout is one JSON object
``{"endpoints": [{"name", "p50_ms", "p95_ms", "p99_ms", "requests_per_second", "errors"}, ...],
"baseline": {...}, ...}``.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TABULAR_TASK = "breast-cytology"
IMAGE_TASK = "breast-ultrasound"
PASSWORD = "benchmark password 42"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ models


def train_tabular_bundle(folder: Path) -> Path:
    """The project's default tabular model (tuned soft-vote ensemble) fitted on all of WDBC."""
    from medsight.bundle.tabular import TabularBundle
    from medsight.config import DataConfig, ModelConfig, TrainConfig
    from medsight.demo import TARGET, wdbc_frame
    from medsight.tasks.tabular import prepare_table
    from medsight.train.tabular import fit_tabular_model

    config = TrainConfig(name="wdbc", data=DataConfig(target=TARGET, positive_class="malignant"))
    prepared = prepare_table(config, wdbc_frame())
    X = prepared.frame[prepared.schema.feature_columns]
    fitted = fit_tabular_model(
        X,
        prepared.y,
        prepared.groups,
        prepared.schema,
        model=ModelConfig(),
        cleaning=config.cleaning,
        evaluation=config.evaluation,
        seed=0,
    )
    bundle = TabularBundle.from_fit(fitted, prepared.schema, X, {"name": "wdbc-bench"})
    return bundle.save(folder / "tabular-bundle")


def train_image_bundle(folder: Path, epochs: int) -> Path:
    """One small CNN trained briefly (BreastMNIST when present offline, else phantoms)."""
    from medsight.config import (
        EngineSettings,
        ImageDataConfig,
        ImageEvaluationConfig,
        ImageModelConfig,
        ImageTrainConfig,
    )
    from medsight.demo_imaging import demo_data_source
    from medsight.tasks.image import run_image

    source, description = demo_data_source()
    say(f"image data: {description}")
    config = ImageTrainConfig(
        name="serve-bench",
        data=ImageDataConfig(path=source),
        model=ImageModelConfig(ensemble=1),
        engine=EngineSettings(epochs=epochs, patience=None, tta=False),
        evaluation=ImageEvaluationConfig(n_bootstrap=100, gradcam_cases=0),
        output_dir=folder / "runs",
    )
    return run_image(config, progress=False).bundle_path


def sample_png(bundle: Path) -> bytes:
    """A PNG the image model accepts: a phantom image at the bundle's input size."""
    from PIL import Image

    from medsight.bundle.image import ImageBundle
    from medsight.data.phantom import make_phantom_images

    _, height, width = ImageBundle.load(bundle).input_shape
    image = make_phantom_images(1, size=height, seed=7).images[0, 0]
    buffer = io.BytesIO()
    Image.fromarray((image * 255).astype(np.uint8), "L").resize((width, height)).save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


def tabular_rows() -> list[dict[str, Any]]:
    """WDBC rows without their diagnosis, as JSON sends them."""
    from medsight.demo import TARGET, wdbc_frame

    frame = wdbc_frame().drop(columns=TARGET)
    return [{k: float(v) for k, v in row.items()} for row in frame.to_dict("records")]


# ------------------------------------------------------------------------------ data dir


def prepare_data_dir(data_dir: Path, bundles: dict[str, Path]) -> str:
    """Register and promote the bundles, create a clinician; return the clinician's token."""
    from medsight.registry import ModelRegistry
    from medsight.store.audit import CLI_SOURCE
    from medsight.store.database import open_database
    from medsight.store.permissions import Role
    from medsight.store.settings import StoreSettings
    from medsight.store.users import create_api_token, create_user, local_cli_user

    store = StoreSettings(data_dir=data_dir)
    database = open_database(store)
    registry = ModelRegistry.from_settings(store)
    try:
        with database.transaction() as session:
            admin = local_cli_user(session)
            for task, bundle in bundles.items():
                row = registry.register(session, bundle, actor=admin, source=CLI_SOURCE, task=task)
                registry.promote(session, task, row.version, actor=admin, source=CLI_SOURCE)
            user = create_user(
                session, "bench", Role.CLINICIAN, password=PASSWORD, actor=admin, source=CLI_SOURCE
            )
            _, token = create_api_token(session, user, "bench", actor=user, source=CLI_SOURCE)
    finally:
        database.dispose()
    return token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: Path, port: int, log: Path, workers: int, *, group_commit: bool = False
) -> subprocess.Popen[bytes]:
    """``medsight serve --workers N`` in its own process (no access log), output to ``log``."""
    env = {**os.environ, "MEDSIGHT_DATA_DIR": str(data_dir), "MEDSIGHT_ADMIN_PASSWORD": PASSWORD}
    env["MEDSIGHT_GROUP_COMMIT"] = "true" if group_commit else "false"
    env.pop("MEDSIGHT_DATABASE_URL", None)
    entry = "from medsight.cli.main import main; main()"
    command = [sys.executable, "-c", entry, "serve", "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log", "--workers", str(workers)]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.returncode}")
        try:
            if httpx.get(f"{base}/v1/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {timeout:.0f} s")


# ------------------------------------------------------------------------------ load


def encode_request(url: str, headers: dict[str, str], body: dict[str, Any]) -> bytes:
    """One HTTP/1.1 keep-alive POST as bytes, from httpx-style ``json=`` or ``content=`` kwargs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    fields = {"Host": parts.netloc, **headers, **body.get("headers", {})}
    if "json" in body:
        payload = json.dumps(body["json"]).encode()
        fields["Content-Type"] = "application/json"
    else:
        payload = body["content"]
    fields["Content-Length"] = str(len(payload))
    head = f"POST {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode("latin-1") + b"\r\n" + payload


async def read_response(reader: Any) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lines = head.decode("latin-1").lower().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return status, body
    return status, await reader.readexactly(int(headers.get("content-length", "0")))


def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """One endpoint under load (runs in a separate process): ``clients`` keep-alive connections,
    ``warmup`` uncounted requests each, then ``seconds`` of timing.

    The clients are coroutines on raw sockets with the requests encoded once, so the load
    generator costs tens of microseconds per request: on a 2-core machine a thread per client
    with httpx took about a core's worth of the CPU the server needs. Hand-written because no
    Python HTTP client is that light, and ``wrk`` would add a system package.
    """
    import asyncio
    from urllib.parse import urlsplit

    url, rate, clients = spec["url"], spec["rate"], spec["clients"]
    host, port = urlsplit(url).hostname, urlsplit(url).port
    requests = [encode_request(url, spec["headers"], body) for body in spec["bodies"]]
    latencies: list[float] = []
    errors = [0]
    samples: list[str] = []

    async def send(conn: list[Any], request: bytes) -> bool:
        try:
            if conn[0] is None:
                conn[0], conn[1] = await asyncio.open_connection(host, port)
            conn[1].write(request)
            status, body = await read_response(conn[0])
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            conn[0] = conn[1] = None
            if len(samples) < 3:
                samples.append(repr(exc))
            return False
        if not 200 <= status < 300 and len(samples) < 3:
            samples.append(f"{status}: {body[:200].decode(errors='replace')}")
        return 200 <= status < 300

    async def warm(conn: list[Any], index: int) -> None:
        # clients arrive one after another, as users do; opened all at once, the 8 connections
        # would all be accepted by whichever server worker woke first
        await asyncio.sleep(0.05 * index)
        for i in range(spec["warmup"]):
            await send(conn, requests[(index + i) % len(requests)])

    async def timed(conn: list[Any], index: int, start: float, end: float) -> None:
        # paced: request k is due at start + (k + phase) / rate, and its latency counts from
        # then, so time spent queueing behind a slow answer is not hidden
        phase, k, i = index / clients, 0, index
        while True:
            due = start + (k + phase) / rate if rate else time.perf_counter()
            if due >= end:
                return
            pause = due - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            ok = await send(conn, requests[i % len(requests)])
            latencies.append(time.perf_counter() - due)
            errors[0] += not ok
            i, k = i + clients, k + 1

    async def run() -> float:
        conns: list[list[Any]] = [[None, None] for _ in range(clients)]
        await asyncio.gather(*(warm(c, n) for n, c in enumerate(conns)))
        start = time.perf_counter()
        await asyncio.gather(
            *(timed(c, n, start, start + spec["seconds"]) for n, c in enumerate(conns))
        )
        elapsed = time.perf_counter() - start
        for _, writer in conns:
            if writer is not None:
                writer.close()
        return elapsed

    elapsed = asyncio.run(run())
    every = np.array(latencies) * 1000.0
    count = int(every.size)
    return {
        "name": spec["name"],
        "load": f"paced, {rate:g} requests/s per client" if rate else "closed loop",
        "p50_ms": round(float(np.percentile(every, 50)), 2) if count else None,
        "p95_ms": round(float(np.percentile(every, 95)), 2) if count else None,
        "p99_ms": round(float(np.percentile(every, 99)), 2) if count else None,
        "requests_per_second": round(count / elapsed, 1),
        "errors": int(errors[0]),
        "requests": count,
        "error_samples": samples,
    }


def endpoint_specs(
    base: str, token: str, png: bytes | None, args: argparse.Namespace, grouped: str | None
) -> list[dict[str, Any]]:
    """The endpoints to drive; ``grouped``: the base URL of a second server with group commit
    on, driven with the same tabular load."""
    headers = {"Authorization": f"Bearer {token}"}
    common = {
        "headers": headers,
        "clients": args.clients,
        "workers": args.workers,
        "seconds": args.seconds,
        "rate": args.rate,
    }
    rows = tabular_rows()
    specs = [
        {
            **common,
            "name": "tabular_predict",
            "url": f"{base}/v1/predict/{TABULAR_TASK}",
            "bodies": [{"json": {"row": row}} for row in rows],
            "warmup": args.warmup,
        }
    ]
    if grouped is not None:
        specs.append(
            {
                **specs[0],
                "name": "tabular_predict_with_group_commit",
                "url": f"{grouped}/v1/predict/{TABULAR_TASK}",
            }
        )
    if png is not None:
        image = [{"content": png, "headers": {"Content-Type": "image/png"}}]
        specs.append(
            {
                **common,
                "name": "image_predict",
                "url": f"{base}/v1/predict/{IMAGE_TASK}",
                "bodies": image,
                "warmup": args.warmup,
            }
        )
        specs.append(
            {
                **common,
                "name": "image_predict_gradcam",
                "url": f"{base}/v1/predict/{IMAGE_TASK}?explain=true",
                "bodies": image,
                "warmup": max(2, args.warmup // 4),
            }
        )
    return specs


# ------------------------------------------------------------------------------ baseline


def baseline(bundle: Path, repeats: int) -> dict[str, Any]:
    """The bare bundle's time for one row in this process: the service's per-row path and the
    DataFrame path, each with the same model (p50 / p99 in ms)."""
    import pandas as pd

    from medsight.bundle.forests import sequential_forests
    from medsight.bundle.tabular import TabularBundle

    rows = tabular_rows()
    reference = TabularBundle.load(bundle)
    served = TabularBundle.load(bundle)
    sequential_forests(served.model)
    served.row_model  # noqa: B018 (the service compiles the one-row path at load)

    def timed(call: Any) -> dict[str, float]:
        for row in rows[:10]:
            call(row)
        times = []
        for i in range(repeats):
            begin = time.perf_counter()
            call(rows[i % len(rows)])
            times.append(time.perf_counter() - begin)
        ms = np.array(times) * 1000.0
        return {
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
        }

    return {
        "name": "tabular_bundle_one_row",
        "served_path": timed(lambda row: served.predict_row(row, explain=False)),
        "dataframe_path": timed(
            lambda row: reference.predict(
                pd.DataFrame.from_records([row]), explain=False, where="row"
            )
        ),
        "repeats": repeats,
    }


# ------------------------------------------------------------------------------ main


def combine_rounds(rounds: list[dict]) -> dict:
    """One endpoint's figures over its rounds: the median of each, errors and requests summed,
    and every round's own figures (one round: that round as it is)."""
    if len(rounds) == 1:
        return rounds[0]
    figures = ("p50_ms", "p95_ms", "p99_ms", "requests_per_second")
    medians = {k: round(statistics.median(r[k] for r in rounds), 2) for k in figures}
    combined = {**rounds[0], **medians}
    combined["errors"] = sum(r["errors"] for r in rounds)
    combined["requests"] = sum(r["requests"] for r in rounds)
    combined["rounds"] = [{k: r[k] for k in (*figures, "errors")} for r in rounds]
    samples = [s for r in rounds for s in r.get("error_samples", [])]
    if samples:
        combined["error_samples"] = samples[:5]
    return combined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="timed seconds per endpoint")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="requests per second per client (default 0: each client sends the next request as "
        "soon as it has the answer)",
    )
    parser.add_argument("--warmup", type=int, default=20, help="uncounted requests per client")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="server worker processes (default: 2, or 1 on a single core)",
    )
    parser.add_argument("--tabular-bundle", type=Path, help="a tabular bundle folder to serve")
    parser.add_argument("--image-bundle", type=Path, help="an image bundle folder to serve")
    parser.add_argument("--image-epochs", type=int, default=3)
    parser.add_argument("--no-image", action="store_true", help="tabular endpoint only")
    parser.add_argument("--baseline-repeats", type=int, default=500)
    parser.add_argument(
        "--rounds", type=int, default=1, help="drive every endpoint this many times, in turn"
    )
    parser.add_argument(
        "--no-group-commit-comparison",
        action="store_true",
        help="skip the tabular endpoint of a second server with group commit on",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="medsight-serve-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        tabular = args.tabular_bundle or train_tabular_bundle(folder)
        say(f"tabular bundle: {tabular} ({time.perf_counter() - started:.0f} s)")
        bundles = {TABULAR_TASK: tabular}
        image: Path | None = None
        if not args.no_image:
            started = time.perf_counter()
            image = args.image_bundle or train_image_bundle(folder, args.image_epochs)
            say(f"image bundle: {image} ({time.perf_counter() - started:.0f} s)")
            bundles[IMAGE_TASK] = image
        data_dir = folder / "data"
        token = prepare_data_dir(data_dir, bundles)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = folder / "server.log"
        server = start_server(data_dir, port, log, args.workers)
        servers = [server]
        grouped: str | None = None
        if not args.no_group_commit_comparison:
            second = free_port()
            grouped = f"http://127.0.0.1:{second}"
            servers.append(
                start_server(
                    data_dir, second, folder / "server-2.log", args.workers, group_commit=True
                )
            )
        results = []
        try:
            wait_ready(base, server)
            say(f"server ready on {base}")
            if grouped is not None:
                wait_ready(grouped, servers[1])
                say(f"server with group commit on ready on {grouped}")
            png = sample_png(image) if image is not None else None
            context = multiprocessing.get_context("spawn")
            specs = endpoint_specs(base, token, png, args, grouped)
            by_name: dict[str, list[dict]] = {spec["name"]: [] for spec in specs}
            with context.Pool(1) as pool:  # the clients run in another process
                for round_number in range(1, args.rounds + 1):
                    for spec in specs:
                        say(
                            f"{spec['name']}: {args.clients} clients for {args.seconds:g} s "
                            f"(round {round_number} of {args.rounds})"
                        )
                        result = pool.apply(drive, (spec,))
                        if not result["error_samples"]:
                            result.pop("error_samples")
                        say(json.dumps(result))
                        by_name[spec["name"]].append(result)
            results = [combine_rounds(rounds) for rounds in by_name.values()]
        finally:
            for running in servers:
                running.terminate()
                try:
                    running.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    running.kill()
            if results == [] or server.returncode not in (0, -15, None):
                say("server output:\n" + log.read_text()[-3000:])
        say("baseline: the bundle alone, in-process")
        reference = baseline(tabular, args.baseline_repeats)
        say(json.dumps(reference))
    summary = {
        "endpoints": results,
        "baseline": reference,
        "clients": args.clients,
        "workers": args.workers,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
